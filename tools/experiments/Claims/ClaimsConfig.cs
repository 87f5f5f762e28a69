namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// Settings shared by the claim experiments. Learning rates are chosen on <see cref="TuningSeeds"/> and everything
/// reported comes from <see cref="ReportSeeds"/>, which never take part in the choice.
/// </summary>
public sealed record ClaimsConfig
{
    public string Name { get; init; } = "full";
    public int[] TuningSeeds { get; init; } = [100, 101];
    public int[] ReportSeeds { get; init; } = [0, 1, 2, 3, 4];
    public int Workers { get; init; } = 2;
    /// <summary>Label noise variance as a fraction of the frozen base's error: the relative loss floor.</summary>
    public double NoiseFraction { get; init; } = 1e-3;
    /// <summary>Steps of the stochastic (noisy, fresh batch) runs.</summary>
    public int Steps { get; init; } = 300;
    /// <summary>Step budget of the exact gradient-descent runs.</summary>
    public int GdSteps { get; init; } = 3000;
    /// <summary>AdamW grid of the capacity and SingLoRA-settings sweeps (every grid LR runs on every seed there).</summary>
    public double[] AdamWLrs { get; init; } = [3e-3, 1e-2, 3e-2, 1e-1];
    /// <summary>Grids of the factor-conditioning experiment, per optimizer (only the tuning seeds run them all).</summary>
    public double[] FactorAdamWLrs { get; init; } = [3e-3, 1e-2, 3e-2, 1e-1, 3e-1];
    public double[] SgdLrs { get; init; } = [3e-2, 1e-1, 3e-1, 1, 3, 10, 30];
    public double[] SgdMomentumLrs { get; init; } = [3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1, 3];
    public double[] FactorKappas { get; init; } = [1, 10, 100, 1000];
    public double[] GdKappas { get; init; } = [1, 2, 4, 8, 16, 32, 64];
    /// <summary>Exact GD: learning rate = c / λ̂ (λ̂ the largest eigenvalue of the method's preconditioner at the start), c from this grid.</summary>
    public double[] GdLrFactors { get; init; } = [0.25, 0.5, 1, 1.5, 1.8, 1.95];
    public int[] CapacityRanks { get; init; } = [2, 4, 8];

    public PlantedSettings Planted { get; init; } = new();

    public IEnumerable<int> AllSeeds => TuningSeeds.Concat(ReportSeeds);

    public double[] LearningRates(OptimizerKind kind) => kind switch
    {
        OptimizerKind.AdamW => FactorAdamWLrs,
        OptimizerKind.Sgd => SgdLrs,
        _ => SgdMomentumLrs,
    };

    public static ClaimsConfig Full => new();

    /// <summary>A pipeline check (minutes): one tuning and two report seeds, fewer conditions and steps.</summary>
    public static ClaimsConfig Quick => new()
    {
        Name = "quick",
        TuningSeeds = [100],
        ReportSeeds = [0, 1],
        Steps = 150,
        GdSteps = 1500,
        AdamWLrs = [3e-3, 3e-2],
        FactorAdamWLrs = [3e-3, 3e-2],
        SgdLrs = [1e-1, 1],
        SgdMomentumLrs = [1e-2, 1e-1],
        FactorKappas = [1, 100],
        GdKappas = [1, 4, 16],
        GdLrFactors = [0.5, 1],
        CapacityRanks = [2, 8],
        Planted = new PlantedSettings { Steps = 60, LearningRates = [3e-3], ReportWorlds = [0], InstanceImages = 8 },
    };
}
