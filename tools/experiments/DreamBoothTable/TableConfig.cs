namespace DiffusionPeft.Experiments.DreamBoothTable;

/// <summary>
/// The DreamBooth table's grid. Learning rates are chosen per arm on <see cref="TuningSeed"/> over the first
/// <see cref="TuningSubjects"/> subjects (by mean DINO + CLIP-T, so neither copying the instances nor ignoring them
/// wins); the reported cells use other seeds (<see cref="Seeds"/>) on every subject. Every arm is also run at
/// <see cref="CommonLr"/> on the reported seeds, so that a rate chosen by a weak tuning signal can be told from the method.
/// </summary>
public sealed record TableConfig
{
    public string Name { get; init; } = "full";
    public int Rank { get; init; } = 4;
    public int Steps { get; init; } = 300;
    public int Batch { get; init; } = 2;
    public IReadOnlyList<double> Lrs { get; init; } = [3e-4, 1e-3, 3e-3];
    public long TuningSeed { get; init; } = 100;
    public int TuningSubjects { get; init; } = 4;
    public IReadOnlyList<long> Seeds { get; init; } = [0, 1, 2];
    /// <summary>One rate for every arm on the reported seeds, besides each arm's chosen rate (null: none).</summary>
    public double? CommonLr { get; init; } = 3e-3;
    /// <summary>Subject names; empty: all twelve.</summary>
    public IReadOnlyList<string> Subjects { get; init; } = [];
    public int ImagesPerPrompt { get; init; } = 1;
    public int SamplingSteps { get; init; } = 20;
    public double GuidanceScale { get; init; } = 7.5;

    /// <summary>A smoke run of the whole chain in minutes: two subjects, one LR, one seed, few steps.</summary>
    public static TableConfig Quick => new()
    {
        Name = "quick", Steps = 30, Lrs = [1e-3], CommonLr = null, TuningSubjects = 1, Seeds = [0], Subjects = ["sunny_star", "dotted_circle"], SamplingSteps = 6,
    };
}
