namespace DiffusionPeft.Experiments.Claims;

/// <summary>The planted-personalization experiment's settings (see <see cref="PlantedDiffusionExperiment"/>).</summary>
public sealed record PlantedSettings
{
    public int PlantedRank { get; init; } = 4;
    public double PlantedKappa { get; init; } = 10;
    /// <summary>σ_max(ΔW*) as a fraction of σ_max(W0), per layer.</summary>
    public double RelativeScale { get; init; } = 0.5;
    /// <summary>V of ΔW* = U·S·Vᵀ: the leading directions of each layer's inputs on the instance prompt (default), or random.</summary>
    public PlantedSpan Span { get; init; } = PlantedSpan.Inputs;
    public int InstanceImages { get; init; } = 24;
    public int Steps { get; init; } = 60;
    public int Batch { get; init; } = 4;
    public double[] LearningRates { get; init; } = [1e-3, 3e-3];
    public int[] TuningWorlds { get; init; } = [100];
    public int[] ReportWorlds { get; init; } = [0, 1, 2, 3, 4];
    /// <summary>The instance prompt the teacher's samples are made with and trained on, and an unseen prompt for the ε error.</summary>
    /// <remarks>Defaults in the toy world's grammar: the experiment runs on the shipped toy model unless --model says otherwise.</remarks>
    public string Prompt { get; init; } = "a sks star";
    public string HeldOutPrompt { get; init; } = "a large blue circle on the left, plain yellow background";
}
