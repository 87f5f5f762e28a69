using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.AdapterMethods;

/// <summary>Which orthonormal basis of the column space of Aᵀ (and B) carries SDS-LoRA's gradient.</summary>
public enum SdsBasis
{
    /// <summary>Thin QR with the signs fixed so diag(R) ≥ 0: then dL/dB = s G Q_A R_A differs from s G Q_A by a triangular R_A with positive diagonal.</summary>
    QrPositiveDiagonal,
    /// <summary>The polar factor U Vᵀ of the thin SVD: then the true gradient is s G Q_A (V Σ Vᵀ), a PSD preconditioner, so the update is always a descent direction.</summary>
    Polar,
}

/// <summary>
/// Experiment-local SDS-LoRA variants, used to diagnose the library layer (<see cref="SdsLoraLinear"/>): same forward value s B A x,
/// gradients s G Q_A and s Q_Bᵀ G through the detach formulation of methods.md, with the basis chosen by <see cref="SdsBasis"/>.
/// Bases are recomputed on every training forward (one forward per optimizer step here).
/// </summary>
public sealed class SdsVariantLinear : LowRankPairLayer
{
    private readonly SdsBasis _basis;

    public SdsVariantLinear(Parameter weight, AdapterOptions options, SdsBasis basis)
        : base(nameof(SdsVariantLinear), weight, null, options with { Method = AdapterMethod.SdsLora }, "default", ownsBase: true) => _basis = basis;

    protected override Tensor AddBranch(Tensor x, Tensor y, Tensor? baseOut)
    {
        if (!is_grad_enabled()) return AddLoraBranch(x, y);
        var qa = Basis(lora_A.detach().t());
        var qb = Basis(lora_B.detach());
        var ad = lora_A.detach();
        var bd = lora_B.detach();
        double s = Scaling;
        var y1 = addmm(y, x.mm(ad.t()).mul(s), bd.t(), 1, 1);
        var y2 = addmm(y1, x.mm(qa).mul(s), (lora_B - bd).t(), 1, 1);
        return addmm(y2, x.mm((lora_A - ad).t()).mul(s), qb.t(), 1, 1);
    }

    /// <summary>Orthonormal basis of a (d x r) matrix's columns; directions with a negligible singular value / R diagonal are zeroed.</summary>
    public Tensor Basis(Tensor m)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        double tol = Options.SdsTolerance;
        if (_basis == SdsBasis.Polar)
        {
            var (u, sv, vh) = linalg.svd(m, fullMatrices: false);
            var keep = sv.gt(sv.max() * tol).logical_and(sv.gt(0)).to_type(m.dtype);
            return (u * keep).mm(vh).MoveToOuterDisposeScope();
        }
        var (q, r) = linalg.qr(m, linalg.QRMode.Reduced);
        var d = r.diagonal();
        var mag = d.abs();
        var sign = d.sign() * mag.gt(mag.max() * tol).logical_and(mag.gt(0)).to_type(m.dtype);
        return (q * sign).MoveToOuterDisposeScope();
    }
}
