using DiffusionPeft.Adapters;

namespace DiffusionPeft.Experiments.DreamBoothTable;

/// <summary>One method setting of the table: method, rank and (SDS-LoRA) basis; "base" is the model without an adapter.</summary>
public sealed record TableArm(string Name, AdapterMethod Method, int Rank, SdsBasis Basis = SdsBasis.Polar, string Budget = "")
{
    public static TableArm Base { get; } = new("base", AdapterMethod.Lora, 0);
    public bool IsBase => Rank == 0;

    /// <summary>
    /// LoRA, DoRA, SingLoRA, SDS-LoRA (both bases) at rank r; SingLoRA again at 2r, which matches LoRA r's parameter count on
    /// square layers (one r×d factor instead of two; the cross-attention to_k/to_v are not square, so counts are reported).
    /// </summary>
    public static IReadOnlyList<TableArm> Default(int rank) =>
    [
        new("lora", AdapterMethod.Lora, rank, Budget: "equal rank"),
        new("dora", AdapterMethod.Dora, rank, Budget: "equal rank"),
        new("singlora", AdapterMethod.SingLora, rank, Budget: "equal rank"),
        new($"singlora-r{2 * rank}", AdapterMethod.SingLora, 2 * rank, Budget: "≈ equal parameters"),
        new("sdslora-polar", AdapterMethod.SdsLora, rank, SdsBasis.Polar, "equal rank"),
        new("sdslora-qr", AdapterMethod.SdsLora, rank, SdsBasis.Qr, "equal rank"),
    ];
}
