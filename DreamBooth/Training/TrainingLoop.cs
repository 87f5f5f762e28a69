using DiffusionPeft.DreamBooth.Config;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// The settings of the <see cref="Trainer"/>'s loop, whatever it trains (adapters, a whole UNet, a VAE, a text encoder):
/// steps, AdamW, the LR schedule, accumulation, clipping, the seed of everything random, checkpoints, plot and validation
/// cadence. <see cref="TrainConfig.Loop"/> gives a DreamBooth run's.
/// </summary>
public sealed record TrainingLoop
{
    public int Steps { get; init; } = 500;
    public double Lr { get; init; } = 1e-4;
    public int GradAccumulation { get; init; } = 1;
    public double MaxGradNorm { get; init; } = 1.0;
    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 1e-2;
    public LrScheduleKind LrScheduler { get; init; } = LrScheduleKind.Constant;
    public int LrWarmupSteps { get; init; }
    public int LrNumCycles { get; init; } = 1;
    public double LrPower { get; init; } = 1.0;
    public double LrEnd { get; init; } = 1e-7;
    public long Seed { get; init; }
    public int CheckpointEvery { get; init; } = 100;
    public int Keep { get; init; } = 3;
    public string? Resume { get; init; }
    public int PlotEvery { get; init; } = 25;
    public int ValidateEvery { get; init; }
    /// <summary>The maximum decay of an exponential moving average of the trained weights (<see cref="EmaWeights"/>); null: none.</summary>
    public double? EmaDecay { get; init; }
}

/// <summary>
/// The settings a checkpoint records so that a resume with different training settings is refused: their hash, the
/// file written into each checkpoint, and the names of the settings that differ from a saved file.
/// </summary>
public interface IRunSettings
{
    string Hash { get; }
    string FileName { get; }
    void Save(string path);
    IReadOnlyList<string> DifferencesFrom(string savedPath);
}

/// <summary>A DreamBooth run's settings: config.yaml, hashed without its resume-neutral options.</summary>
public sealed class TrainConfigSettings(TrainConfig config) : IRunSettings
{
    public string Hash { get; } = TrainConfigYaml.TrainingHash(config);
    public string FileName => TrainConfigYaml.ResolvedFileName;
    public void Save(string path) => TrainConfigYaml.Save(config, path);
    public IReadOnlyList<string> DifferencesFrom(string savedPath) =>
        TrainConfigYaml.TrainingDifferences(TrainConfigYaml.Load(savedPath, validate: false), config);
}
