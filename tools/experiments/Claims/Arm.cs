using DiffusionPeft.Adapters;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>One adapter configuration under test: a label and the library's layer options.</summary>
public sealed record Arm(string Name, AdapterOptions Options)
{
    public static Arm Lora(int rank) => new($"LoRA r{rank}", new AdapterOptions { Method = AdapterMethod.Lora, Rank = rank, Alpha = rank });

    public static Arm Dora(int rank) => new($"DoRA r{rank}", new AdapterOptions { Method = AdapterMethod.Dora, Rank = rank, Alpha = rank });

    public static Arm Sds(int rank, SdsBasis basis) =>
        new($"SDS-LoRA {(basis == SdsBasis.Qr ? "QR" : "polar")} r{rank}", new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = rank, Alpha = rank, SdsBasis = basis });

    public static Arm SingLora(int rank, double initScale, long rampSteps, string? suffix = null) =>
        new($"SingLoRA r{rank}{suffix}", new AdapterOptions { Method = AdapterMethod.SingLora, Rank = rank, Alpha = rank, InitScale = initScale, RampSteps = rampSteps });
}
