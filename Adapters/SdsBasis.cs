using System.Runtime.Serialization;

namespace DiffusionPeft.Adapters;

/// <summary>
/// SDS-LoRA's orthonormal bases. Qr: the thin QR of methods.md (diag R &gt; 0). Polar: Q = U Vᵀ of the thin SVD, so
/// M = Q H with H = V Σ Vᵀ positive semi-definite and LoRA's gradient is the SDS gradient times H: always a descent
/// direction (tools/experiments found it much faster than QR; see its README).
/// </summary>
public enum SdsBasis
{
    [EnumMember(Value = "qr")] Qr,
    [EnumMember(Value = "polar")] Polar,
}
