using DiffusionPeft.Diffusion.Platform;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Checkpoints;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Subjects;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth;

/// <summary>
/// One DreamBooth run, the library's entry point (the CLI, bench-dreambooth, the tests and the toy-world training call
/// it): <see cref="Run"/> does everything for one config. In steps, as <c>dpeft train</c> does for many subjects:
/// <see cref="Resolve"/> the config (file + flags); <see cref="PrepareData"/> (scans and decodes the instance images: bad
/// folders fail here, before any model loads; creates the run folder and writes the resolved config); then
/// <see cref="Train(StableDiffusionModel?, CancellationToken)"/>: loads the base model (or the embedded default),
/// generates missing class images, injects the adapters (<see cref="AdapterSession"/>) or, in full mode, trains every UNet
/// weight (<see cref="FullFineTuneTarget"/>), runs the <see cref="Trainer"/> with checkpoints, validation images and exact
/// resume, and writes the final adapter files (or the diffusers folder RUN/model).
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

    public DreamBoothRun(TrainConfig config, IImageDecoder? decoder = null, ITrainingProgress? progress = null)
    {
        TrainConfigYaml.Validate(config);
        _progress = progress ?? NullTrainingProgress.Instance;
        Config = TrainDType.Resolve(config, _progress.Warning);
        RunDirectory = Path.GetFullPath(config.Out);
        _decoder = decoder ?? ImageLoaderDecoder.Instance;
    }

    /// <summary>The adapters of the last <see cref="Train(StableDiffusionModel?, CancellationToken)"/> (injected into its model).</summary>
    public AdapterSession? Adapters { get; private set; }

    /// <summary>A whole run for one config: scan the images, load the model, train, write the adapter files.</summary>
    public static TrainResult Run(TrainConfig config, ITrainingProgress? progress = null, CancellationToken cancellationToken = default)
    {
        var run = new DreamBoothRun(config, progress: progress);
        run.PrepareData();
        return run.Train(cancellationToken: cancellationToken);
    }

    /// <summary>The config file (optional) with command-line values on top (keys are the flag names).</summary>
    public static TrainConfig Resolve(string? configPath, IEnumerable<KeyValuePair<string, string>>? flags, TrainConfig? defaults = null) =>
        TrainConfigYaml.Resolve(configPath, flags, defaults);

    /// <summary>
    /// A subjects manifest run: the config file and flags give the shared settings (--images and --prompt may be
    /// left out; prompts may use {identifier} and {class}), each subject of this shard gets its own validated config
    /// with --out/&lt;subject&gt; as its run folder.
    /// </summary>
    public static IReadOnlyList<(Subject Subject, TrainConfig Config)> ResolveSubjects(string? configPath, IEnumerable<KeyValuePair<string, string>>? flags,
                                                                                       string manifestPath, Shard shard, TrainConfig? defaults = null)
    {
        var shared = configPath is null ? defaults ?? new TrainConfig() : TrainConfigYaml.Load(configPath, validate: false, defaults);
        if (flags is not null) shared = TrainConfigYaml.ApplyOverrides(shared, flags);
        var plans = SubjectsManifest.Plan(shared, SubjectsManifest.Read(manifestPath), shard);
        foreach (var (subject, config) in plans) TrainConfigYaml.Validate(config, $"{manifestPath} (subject {subject.Name})");
        return plans;
    }

    public InstanceDataset PrepareData()
    {
        var instances = InstanceDataset.Scan(Config.Images, Config.Prompt, _decoder, _progress.Warning, masks: Config.MaskedLoss);
        if (instances.Skipped.Count > 0)
            _progress.Warning($"{instances.Skipped.Count} of {instances.Count + instances.Skipped.Count} files in {Config.Images} were skipped");
        Buckets = Config.Buckets ? new AspectBuckets(Config.Resolution) : null;
        TargetSizes = instances.Images
            .Select(im => Buckets?.For(im.Width, im.Height) ?? new Bucket(Config.Resolution, Config.Resolution))
            .ToArray();
        ResumeCheckpoint.RefuseWhatTheTrainerWould(Config);   // before config.yaml is rewritten: it describes the checkpoints beside it
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

    /// <summary>
    /// Trains the config's adapters on <paramref name="model"/> (adapters are injected into it), or on the config's
    /// model, loaded here and disposed after (the embedded default when the config says "embedded"). Throws
    /// <see cref="NonFiniteLossException"/> when the loss goes non-finite (the last good checkpoint is kept).
    /// </summary>
    public TrainResult Train(StableDiffusionModel? model = null, CancellationToken cancellationToken = default)
    {
        if (Instances is null) PrepareData();
        Dictionary<string, Tensor>? fp32 = null;
        var owned = model is null ? LoadModel(out fp32) : null;
        try
        {
            var sd = model ?? owned!;
            PrepareClassImages(new PipelineClassImageSampler(sd, Config.Resolution), Config.Batch, cancellationToken);
            using var training = new StableDiffusionTraining(this, sd, _progress.Warning, _progress.Info);
            ITrainingTarget target;
            string trained;
            if (Config.Mode == TrainingMode.Full)
            {
                FullFineTuneTarget full;
                try { full = new FullFineTuneTarget(sd, Config, fp32, training.Whitening); }
                finally { DisposeAll(fp32); fp32 = null; }
                var parts = string.Join(", ", full.ParameterGroups.Select(g => g.Name));
                _progress.Info($"full fine-tuning: {full.ParameterCount:N0} weights ({parts})" +
                               (full.MixedPrecision ? "; bf16 compute on fp32 master weights" : "") +
                               (training.Whitening is null ? "" : "; on whitened text states"));
                target = full;
                trained = $"full fine-tuning ({parts})";
            }
            else
            {
                target = Adapters = new AdapterSession(sd, Config);
                trained = $"{TrainConfigYaml.EnumName(Config.Method)} rank {Config.Rank}";
                _progress.Info($"{trained}: " + string.Join("; ", Adapters.Reports.Select(r => r.ToString().Split('\n')[0])));
            }
            using var disposableTarget = target as IDisposable;   // full fine-tuning's fp32 masters
            IValidationSampler? validation = Config.ValidateEvery > 0
                ? new PipelineValidationSampler(sd, Config.ValidationPrompts, Config.EffectiveValidationSeeds, Config.Resolution,
                    prepare: training.Whitening is { } whitening ? () => whitening.FoldedInto(sd.Unet) : null, trained: trained)
                : null;
            return TrainWith(target, training.Objective, validation, cancellationToken: cancellationToken);
        }
        finally
        {
            DisposeAll(fp32);
            owned?.Dispose();
        }
    }

    private static void DisposeAll(Dictionary<string, Tensor>? tensors)
    {
        if (tensors is not null) foreach (var t in tensors.Values) t.Dispose();
    }

    /// <summary>
    /// Loads the config's model on its device in its dtype. Full fine-tuning in mixed precision loads it once in fp32 on
    /// the CPU and keeps those weights by parameter name ("unet.conv_in.weight"): the masters start from them, not from
    /// their bf16 rounding, and the untrained components are written from them (as diffusers' script writes the
    /// original VAE and text encoder); the model then computes in bf16 on its device.
    /// </summary>
    private StableDiffusionModel LoadModel(out Dictionary<string, Tensor>? fp32Weights)
    {
        fp32Weights = null;
        var device = TorchOptions.ParseDevice(Config.Device);
        var dtype = TorchOptions.ParseDType(Config.DType);
        if (CudaReproducibility.ForTraining(device) is { } reproducibility) _progress.Info(reproducibility);
        bool mixed = Config.Mode == TrainingMode.Full && dtype == ScalarType.BFloat16;
        var model = StableDiffusionLoader.LoadOrEmbedded(Config.Model, mixed ? ScalarType.Float32 : dtype, mixed ? CPU : device,
            configsFrom: Config.ConfigsFrom, tokenizerDir: Config.Tokenizer);
        if (model.IsEmbeddedDefault) _progress.Info(EmbeddedDefaultModel.Note("training", model));
        if (!mixed) return model;
        try
        {
            // Aliases, not copies: moving the model to bf16 replaces its parameters, and these keep the fp32 values alive.
            // A bf16 save of an untrained component is the bf16 model's own weights: only the trained ones, or all, are kept.
            bool keepUntrained = Config.SaveDType != SaveDType.Bf16;
            fp32Weights = new Dictionary<string, Tensor>();
            foreach (var (prefix, module, trained) in new (string, nn.Module, bool)[]
                     { ("unet.", model.Unet, true), ("text_encoder.", model.TextEncoder, Config.TrainTextEncoder), ("vae.", model.Vae, false) })
                if (trained || keepUntrained)
                    foreach (var (name, p) in module.named_parameters()) fp32Weights[prefix + name] = p.detach();
            return model.PlacedOn(ScalarType.BFloat16, device);
        }
        catch
        {
            DisposeAll(fp32Weights);
            fp32Weights = null;
            model.Dispose();
            throw;
        }
    }

    /// <summary>The loop for any target and objective (the SD adapters above, toy objectives in tests): trains and writes the final files.</summary>
    public TrainResult TrainWith(ITrainingTarget target, ITrainingObjective objective, IValidationSampler? validation = null, DataOrder? order = null,
                                 CancellationToken cancellationToken = default)
    {
        if (Instances is null) PrepareData();
        using var trainer = new Trainer(Config, RunDirectory, target, objective, order ?? CreateDataOrder(), _progress, validation);
        var result = trainer.Run(cancellationToken);
        if (!result.Interrupted)
        {
            trainer.WriteResult();
            _progress.Info($"finished {result.Steps} steps; results in {RunDirectory}");
        }
        var skipped = (Instances?.Skipped ?? []).Concat(Classes?.Skipped ?? []).ToList();
        if (skipped.Count > 0)
            _progress.Warning($"{skipped.Count} image file(s) were skipped because they could not be used:\n  {string.Join("\n  ", skipped)}");
        return result;
    }
}
