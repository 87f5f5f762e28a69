namespace DiffusionPeft.ToyModel.Dino;

/// <summary>How the toy DINO trains; the defaults are the shipped evaluator's.</summary>
public sealed record ToyDinoOptions
{
    public long WorldSeed { get; init; }
    /// <summary>Seed of the initialisation, the data order, the trainer's RNG and the views.</summary>
    public long Seed { get; init; }
    public string Device { get; init; } = "cpu";
    public ToyDinoConfig Model { get; init; } = new();
    public int Steps { get; init; } = 600;
    /// <summary>Scenes per step (2 views each).</summary>
    public int Batch { get; init; } = 64;
    public double Lr { get; init; } = 2e-3;
    public double Temperature { get; init; } = 0.2;
    /// <summary>Training scenes the batches draw from (rendered anew for every view, nothing is cached).</summary>
    public int Scenes { get; init; } = 200_000;
    /// <summary>Share of the scenes whose main object is a random multi-coloured compound (<see cref="CompoundObjects"/>).</summary>
    public double CompoundShare { get; init; } = 0.5;
    public ViewAugmentation Augmentation { get; init; } = new();
    public int CheckpointEvery { get; init; } = 100;

    /// <summary>A few steps on a narrow network, for tests.</summary>
    public static ToyDinoOptions Miniature => new()
    {
        Model = new ToyDinoConfig { Width = 8, EmbedDim = 32, ProjectionDim = 16 }, Steps = 12, Batch = 8, Scenes = 256, CheckpointEvery = 4,
    };
}
