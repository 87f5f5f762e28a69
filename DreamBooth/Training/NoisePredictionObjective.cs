using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// DreamBooth's noise-prediction loss, as diffusers' train_dreambooth_lora.py computes it: latents sampled from the
/// (cached) VAE moments and scaled, Gaussian noise (plus offset noise), uniform (or logit-normal) timesteps in [0, T), the scheduler's
/// forward process, and an MSE against ε, v or x0. With prior preservation, the batch is instances then their paired
/// class images; loss = instance loss + prior_weight · class loss. Min-SNR-γ weights the instance loss per sample;
/// with a masked loss, each instance's mask weights it per latent cell (class images are not masked).
/// With caption dropout, an instance sample is trained on the empty caption with that probability (classifier-free
/// guidance). Every random number comes from the training RNG in a fixed order (latent sample, noise, offset,
/// timesteps, caption dropout).
/// </summary>
public sealed class NoisePredictionObjective(
    TrainConfig config,
    TrainingExamples instances,
    TrainingExamples? classes,
    ILatentEncoder vae,
    INoiseSchedule schedule,
    IDenoiser denoiser) : ITrainingObjective
{
    public Tensor Loss(Batch batch, TrainingRng rng)
    {
        using var scope = NewDisposeScope();
        var moments = instances.Moments(batch.Items, batch.Epoch);
        var embeddings = instances.Embeddings(batch.Items);
        long n = moments.shape[0];
        if (classes is not null)
        {
            moments = cat([moments, classes.Moments(batch.Items, batch.Epoch)], 0);
            embeddings = cat([embeddings, classes.Embeddings(batch.Items)], 0);
        }
        var device = moments.device;
        var latents = SampleLatents(moments, rng) * vae.ScalingFactor;
        var noise = rng.Randn(latents.shape, latents.dtype);
        if (config.NoiseOffset > 0) noise = DiffusionLossTerms.OffsetNoise(noise, config.NoiseOffset, rng.Generator);
        noise = noise.to(device);
        var timesteps = config.TimestepSampling == TimestepSampling.LogitNormal
            ? DiffusionLossTerms.LogitNormalTimesteps(rng.Randn([latents.shape[0]]), config.LogitMean, config.LogitStd, schedule.NumTrainTimesteps).to(device)
            : rng.RandInt(0, schedule.NumTrainTimesteps, [latents.shape[0]], device);
        if (config.CaptionDropout > 0)
        {
            // Drawn last, so runs without caption dropout keep their random stream. Instances only: class images keep their prompt.
            var drop = rng.Rand([n], device).lt(config.CaptionDropout).view(-1, 1, 1);
            var empty = instances.EmbeddingsOf([""]).to(embeddings.device);
            var dropped = where(drop, empty.expand(n, -1, -1), embeddings.narrow(0, 0, n));
            embeddings = classes is null ? dropped : cat([dropped, embeddings.narrow(0, n, embeddings.shape[0] - n)], 0);
        }

        var noisy = schedule.AddNoise(latents, noise, timesteps);
        var target = DiffusionLossTerms.Target(schedule, latents, noise, timesteps);
        var prediction = denoiser.Predict(noisy, timesteps, embeddings);

        Tensor? weights = null;
        var tInstance = timesteps.narrow(0, 0, n);
        if (config.SnrGamma is { } gamma)
            weights = DiffusionLossTerms.MinSnrWeights(DiffusionLossTerms.Snr(schedule.AlphasCumprod, tInstance), gamma, schedule.Prediction);
        var masks = config.MaskedLoss
            ? DiffusionLossTerms.MaskWeights(instances.Masks(batch.Items, batch.Epoch, latents.shape[2], latents.shape[3], device), config.UnmaskedWeight)
            : null;
        var loss = DiffusionLossTerms.WeightedMse(prediction.narrow(0, 0, n), target.narrow(0, 0, n), weights, masks);
        if (classes is not null)
            loss = loss + config.PriorWeight * DiffusionLossTerms.WeightedMse(prediction.narrow(0, n, n), target.narrow(0, n, n));
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// With a memory cache, fills it before the first step when the run will draw at least every image once
    /// (<see cref="TrainingExamples.Fill"/>); a shorter run caches lazily what it draws.
    /// </summary>
    public void Prepare(long samplesAhead, Action<string> info, CancellationToken cancellationToken)
    {
        if (config.CacheLatents != LatentCacheMode.Memory || samplesAhead < instances.Count) return;
        instances.Fill(info, cancellationToken);
        classes?.Fill(info, cancellationToken);
    }

    /// <summary>diffusers' DiagonalGaussianDistribution.sample: mean + exp(0.5 · clamp(logvar, −30, 20)) · ε.</summary>
    public static Tensor SampleLatents(Tensor moments, TrainingRng rng)
    {
        using var scope = NewDisposeScope();
        var halves = moments.to_type(ScalarType.Float32).chunk(2, 1);
        var std = halves[1].clamp(-30f, 20f).mul(0.5f).exp();
        var eps = rng.Randn(halves[0].shape).to(moments.device);
        return (halves[0] + std * eps).MoveToOuterDisposeScope();
    }
}
