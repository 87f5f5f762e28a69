using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.Subjects;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.DreamBooth;

/// <summary>
/// What <c>dpeft train</c> runs, in order: <see cref="Resolve"/> the config (file + flags), <see cref="PrepareData"/>
/// (scans and decodes the instance images: bad folders fail here, before any model loads; creates the run
/// folder and writes the resolved config), then the caller loads the model and builds its
/// <see cref="ITrainingObjective"/>, and <see cref="Train"/> runs the loop and writes the final adapter.
/// </summary>
public sealed class DreamBoothRun
{
    public TrainConfig Config { get; }
    public string RunDirectory { get; }
    public InstanceDataset? Instances { get; private set; }
    public InstanceDataset? Classes { get; private set; }
    public AspectBuckets? Buckets { get; private set; }

    /// <summary>The training size (width, height) of each instance image: its bucket, or resolution².</summary>
    public IReadOnlyList<Bucket> TargetSizes { get; private set; } = [];

    private readonly IImageDecoder _decoder;
    public IImageDecoder Decoder => _decoder;
    private readonly ITrainingProgress _progress;

    public DreamBoothRun(TrainConfig config, IImageDecoder decoder, ITrainingProgress? progress = null)
    {
        TrainConfigYaml.Validate(config);
        _progress = progress ?? NullTrainingProgress.Instance;
        Config = TrainDType.Resolve(config, _progress.Warning);
        RunDirectory = Path.GetFullPath(config.Out);
        _decoder = decoder;
    }

    /// <summary>The config file (optional) with command-line values on top (keys are the flag names).</summary>
    public static TrainConfig Resolve(string? configPath, IEnumerable<KeyValuePair<string, string>>? flags) =>
        TrainConfigYaml.Resolve(configPath, flags);

    /// <summary>
    /// A subjects manifest run: the config file and flags give the shared settings (--images and --prompt may be
    /// left out; prompts may use {identifier} and {class}), each subject of this shard gets its own validated config
    /// with --out/&lt;subject&gt; as its run folder.
    /// </summary>
    public static IReadOnlyList<(Subject Subject, TrainConfig Config)> ResolveSubjects(string? configPath, IEnumerable<KeyValuePair<string, string>>? flags,
                                                                                       string manifestPath, Shard shard)
    {
        var shared = configPath is null ? new TrainConfig() : TrainConfigYaml.Load(configPath, validate: false);
        if (flags is not null) shared = TrainConfigYaml.ApplyOverrides(shared, flags);
        var plans = SubjectsManifest.Plan(shared, SubjectsManifest.Read(manifestPath), shard);
        foreach (var (subject, config) in plans) TrainConfigYaml.Validate(config, $"{manifestPath} (subject {subject.Name})");
        return plans;
    }

    public InstanceDataset PrepareData()
    {
        var instances = InstanceDataset.Scan(Config.Images, Config.Prompt, _decoder, _progress.Warning);
        if (instances.Skipped.Count > 0)
            _progress.Warning($"{instances.Skipped.Count} of {instances.Count + instances.Skipped.Count} files in {Config.Images} were skipped");
        Buckets = Config.Buckets ? new AspectBuckets(Config.Resolution) : null;
        TargetSizes = instances.Images
            .Select(im => Buckets?.For(im.Width, im.Height) ?? new Bucket(Config.Resolution, Config.Resolution))
            .ToArray();
        Directory.CreateDirectory(RunDirectory);
        TrainConfigYaml.Save(Config, Path.Combine(RunDirectory, TrainConfigYaml.ResolvedFileName));
        _progress.Info($"{instances.Count} training images in {Config.Images}; run folder {RunDirectory}");
        return Instances = instances;
    }

    /// <summary>
    /// Prior preservation, once the base model is loaded: generates the missing class images (batched, seeded,
    /// resumable) and scans the class folder. Returns null when prior preservation is off.
    /// </summary>
    public InstanceDataset? PrepareClassImages(IClassImageSampler sampler, int batchSize, CancellationToken cancellationToken = default)
    {
        if (!Config.PriorPreservation) return null;
        ClassImages.Generate(Config, _decoder, sampler, batchSize, _progress, cancellationToken);
        return Classes = InstanceDataset.Scan(Config.ClassImages!, Config.ClassPrompt!, _decoder, _progress.Warning, role: "class");
    }

    /// <summary>
    /// Batch order over <paramref name="itemCount"/> items, grouped by bucket. Default: the instance images, or
    /// max(instances, class images) with prior preservation (item i pairs instance i mod n with class image i mod m).
    /// </summary>
    public DataOrder CreateDataOrder(int? itemCount = null)
    {
        var instances = Instances ?? throw new InvalidOperationException("call PrepareData first");
        int n = itemCount ?? Math.Max(instances.Count, Classes?.Count ?? 0);
        var bucketIndex = Enumerable.Range(0, n)
            .Select(i => Buckets is null ? 0 : Buckets.IndexFor(instances[i % instances.Count].Width, instances[i % instances.Count].Height))
            .ToArray();
        return new DataOrder(bucketIndex, Config.Batch, Config.Seed);
    }

    public TrainResult Train(ITrainingObjective objective, IValidationSampler? validation = null, DataOrder? order = null, CancellationToken cancellationToken = default)
    {
        if (Instances is null) PrepareData();
        using var trainer = new Trainer(Config, RunDirectory, objective, order ?? CreateDataOrder(), _progress, validation);
        var result = trainer.Run(cancellationToken);
        if (!result.Interrupted)
        {
            objective.WriteFinal(RunDirectory, result.Steps);
            _progress.Info($"finished {result.Steps} steps; adapter in {RunDirectory}");
        }
        return result;
    }
}
