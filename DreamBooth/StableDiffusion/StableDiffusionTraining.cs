using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>
/// Assembles the SD noise-prediction objective of a prepared <see cref="DreamBoothRun"/>: model parts, latent and
/// text-embedding caches (RUN/cache/ on disk, or memory, or none, per --cache-latents), instance and class examples.
/// Owns the caches; dispose it after training. What it trains is the run's <see cref="ITrainingTarget"/>.
/// </summary>
public sealed class StableDiffusionTraining : IDisposable
{
    public StableDiffusionParts Parts { get; }
    public TensorCache LatentCache { get; }
    public TensorCache TextCache { get; }
    public NoisePredictionObjective Objective { get; }
    /// <summary>--whiten-conditioning's whitening (read from the run folder or computed there); null without it.</summary>
    public ConditioningWhitening? Whitening { get; }

    public StableDiffusionTraining(DreamBoothRun run, StableDiffusionModel model, Action<string>? warn = null, Action<string>? info = null)
    {
        var config = run.Config;
        var instances = run.Instances ?? throw new InvalidOperationException("call DreamBoothRun.PrepareData first");
        if (config.PriorPreservation && run.Classes is null)
            throw new InvalidOperationException("prior preservation: call DreamBoothRun.PrepareClassImages first");
        Parts = new StableDiffusionParts(model);
        WarnAboutLongCaptions(model, instances.Images.Concat(run.Classes?.Images ?? []), warn);
        model.Unet.GradientCheckpointing = config.GradientCheckpointing;
        if (config.WhitenConditioning)
        {
            ConditioningWhitening.ContextProjections(model.Unet);   // refuses a UNet it cannot fold into, before the caches open
            var captions = instances.Images.Concat(run.Classes?.Images ?? []).Select(i => i.Caption).Append("").ToList();
            Whitening = ConditioningWhitening.LoadOrCompute(run.RunDirectory, captions, Parts.Encode, model.Device, info, model.TextEncoder.Config.HiddenSize, config.WhitenStrength);
        }
        var cacheDir = Path.Combine(run.RunDirectory, "cache");
        LatentCache = new TensorCache(config.CacheLatents, Path.Combine(cacheDir, "latents"), warn, model.Device);
        TextCache = new TensorCache(config.CacheLatents, Path.Combine(cacheDir, "text"), warn, model.Device);
        Func<Tensor, Tensor>? conditioning = Whitening is { } w ? w.Apply : null;
        var examples = new TrainingExamples(instances, run.TargetSizes, config, run.Decoder, Parts, Parts, LatentCache, TextCache, conditioning);
        TrainingExamples? classes = run.Classes is { } c
            ? new TrainingExamples(c, c.Images.Select(_ => new Bucket(config.Resolution, config.Resolution)).ToArray(), config, run.Decoder, Parts, Parts, LatentCache, TextCache, conditioning)
            : null;
        Objective = new NoisePredictionObjective(config, examples, classes, Parts, Parts, Parts);
    }

    /// <summary>Captions longer than the text encoder's context are cut (as diffusers does); say so once, with the count and an example.</summary>
    private static void WarnAboutLongCaptions(StableDiffusionModel model, IEnumerable<InstanceImage> images, Action<string>? warn)
    {
        if (warn is null) return;
        var cut = images.Where(i => model.Tokenizer.EncodeForModel(i.Caption).Truncated).ToList();
        if (cut.Count == 0) return;
        var first = model.Tokenizer.EncodeForModel(cut[0].Caption);
        warn($"{cut.Count} training caption(s) are longer than the text encoder's {model.Tokenizer.MaxLength} tokens and are cut; " +
             $"e.g. {Path.GetFileName(cut[0].Path)} loses \"{first.TruncatedText}\"");
    }

    public void Dispose()
    {
        LatentCache.Dispose();
        TextCache.Dispose();
        Whitening?.Dispose();
        Parts.Dispose();
    }
}
