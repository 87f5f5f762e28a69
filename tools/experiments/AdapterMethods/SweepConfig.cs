namespace DiffusionPeft.Experiments.AdapterMethods;

/// <summary>Which low-rank updates the target carries: symmetric PSD (U S Uᵀ, expressible by SingLoRA on a square layer) or general (U S Vᵀ).</summary>
public enum TargetKind { Psd, General }

/// <summary>The frozen model the adapters are put on: one Linear, or a two-layer tanh MLP with adapters on both layers.</summary>
public enum TaskKind { Linear, Mlp }

/// <summary>One sweep: every method × task × kind × κ × learning rate × seed.</summary>
public sealed record SweepConfig
{
    public int Dim { get; init; } = 64;
    public int TargetRank { get; init; } = 4;
    public int AdapterRank { get; init; } = 8;
    /// <summary>Largest singular value of each target update (the base layers have spectral norm about 2).</summary>
    public double TargetScale { get; init; } = 1.0;
    public double[] Kappas { get; init; } = [1, 10, 100];
    public TargetKind[] Kinds { get; init; } = [TargetKind.Psd, TargetKind.General];
    public TaskKind[] Tasks { get; init; } = [TaskKind.Linear, TaskKind.Mlp];
    public double[] LearningRates { get; init; } = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1];
    public int[] Seeds { get; init; } = [0, 1, 2];
    public int Steps { get; init; } = 500;
    public int Batch { get; init; } = 256;
    public int EvalEvery { get; init; } = 10;
    public int EvalSamples { get; init; } = 2048;
    /// <summary>Effective rank of the adapter gradients is measured every this many steps.</summary>
    public int RankEvery { get; init; } = 10;
    /// <summary>Relative loss (eval MSE / the frozen base's eval MSE) that counts as solved.</summary>
    public double Threshold { get; init; } = 1e-3;
    /// <summary>A second, stricter threshold: at κ = 100 it cannot be met without learning the smallest target direction.</summary>
    public double StrictThreshold { get; init; } = 1e-5;
    /// <summary>A run whose relative loss exceeds this (or is not finite) has diverged and stops.</summary>
    public double DivergeAt { get; init; } = 1e2;
    public long SingLoraRamp { get; init; } = 100;
    public double[] SingLoraInitScales { get; init; } = [1.0, 0.1];
    public double LoraPlusLambda { get; init; } = 16;
    /// <summary>Also run the experiment-local SDS-LoRA variants (sign-fixed QR, polar basis) next to the library's layer.</summary>
    public bool SdsVariants { get; init; } = true;
    public int Workers { get; init; } = 2;
    public string Name { get; init; } = "full";

    public static SweepConfig Full => new();

    /// <summary>A reduced sweep (about a tenth of the full one) to check the pipeline end to end.</summary>
    public static SweepConfig Quick => new()
    {
        Name = "quick",
        Kappas = [1, 100],
        LearningRates = [1e-3, 1e-2, 1e-1],
        Seeds = [0],
        Steps = 300,
        EvalSamples = 1024,
    };
}
