using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Training;

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

    public StableDiffusionTraining(DreamBoothRun run, StableDiffusionModel model, Action<string>? warn = null)
    {
        var config = run.Config;
        var instances = run.Instances ?? throw new InvalidOperationException("call DreamBoothRun.PrepareData first");
        if (config.PriorPreservation && run.Classes is null)
            throw new InvalidOperationException("prior preservation: call DreamBoothRun.PrepareClassImages first");
        Parts = new StableDiffusionParts(model);
        model.Unet.GradientCheckpointing = config.GradientCheckpointing;
        var cacheDir = Path.Combine(run.RunDirectory, "cache");
        LatentCache = new TensorCache(config.CacheLatents, Path.Combine(cacheDir, "latents"), warn, model.Device);
        TextCache = new TensorCache(config.CacheLatents, Path.Combine(cacheDir, "text"), warn, model.Device);
        var examples = new TrainingExamples(instances, run.TargetSizes, config, run.Decoder, Parts, Parts, LatentCache, TextCache);
        TrainingExamples? classes = run.Classes is { } c
            ? new TrainingExamples(c, c.Images.Select(_ => new Bucket(config.Resolution, config.Resolution)).ToArray(), config, run.Decoder, Parts, Parts, LatentCache, TextCache)
            : null;
        Objective = new NoisePredictionObjective(config, examples, classes, Parts, Parts, Parts);
    }

    public void Dispose()
    {
        LatentCache.Dispose();
        TextCache.Dispose();
        Parts.Dispose();
    }
}
