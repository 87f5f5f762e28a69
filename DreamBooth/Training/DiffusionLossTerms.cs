using DiffusionPeft.Diffusion.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// Loss terms of diffusers' training scripts as tensor functions: SNR from alphas_cumprod, min-SNR-γ weights
/// (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"), the per-sample weighted and masked
/// MSE, and offset noise.
/// </summary>
public static class DiffusionLossTerms
{
    /// <summary>diffusers' <c>compute_snr</c>: (sqrt(ᾱ_t) / sqrt(1 − ᾱ_t))², float32 per timestep.</summary>
    public static Tensor Snr(Tensor alphasCumprod, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var a = alphasCumprod.to(timesteps.device).to_type(ScalarType.Float32)[timesteps.to_type(ScalarType.Int64)];
        var alpha = a.sqrt();
        var sigma = (1f - a).sqrt();
        return (alpha / sigma).pow(2).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// min(snr, γ) / snr for ε-prediction, min(snr, γ) / (snr + 1) for v-prediction, min(snr, γ) for
    /// sample prediction, exactly as diffusers' train scripts build <c>mse_loss_weights</c>.
    /// </summary>
    public static Tensor MinSnrWeights(Tensor snr, double gamma, PredictionType prediction)
    {
        using var scope = NewDisposeScope();
        var clipped = snr.clamp_max(gamma);
        var w = prediction switch
        {
            PredictionType.Epsilon => clipped / snr,
            PredictionType.VPrediction => clipped / (snr + 1f),
            _ => clipped,
        };
        return w.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Logit-normal timesteps (Esser et al. 2024, "Scaling Rectified Flow Transformers", §3.1; diffusers'
    /// <c>compute_density_for_timestep_sampling</c>): ⌊T · sigmoid(mean + std · n)⌋ for standard normal draws n, int64,
    /// clamped to [0, T − 1]. The middle of the schedule, where coarse content turns into shapes, is drawn most.
    /// </summary>
    public static Tensor LogitNormalTimesteps(Tensor standardNormal, double mean, double std, int numTrainTimesteps)
    {
        using var scope = NewDisposeScope();
        var u = (standardNormal.to_type(ScalarType.Float64) * std + mean).sigmoid();
        return (u * numTrainTimesteps).floor().clamp(0, numTrainTimesteps - 1).to_type(ScalarType.Int64).MoveToOuterDisposeScope();
    }

    /// <summary>What the model is trained to predict at these noisy latents: the noise (ε), the velocity α·ε − σ·x0 (v), or x0.</summary>
    public static Tensor Target(INoiseSchedule schedule, Tensor latents, Tensor noise, Tensor timesteps) => schedule.Prediction switch
    {
        PredictionType.Epsilon => noise,
        PredictionType.VPrediction => schedule.GetVelocity(latents, noise, timesteps),
        _ => latents,
    };

    /// <summary>
    /// MSE in float32, times the per-element <paramref name="mask"/> weights (if any; [B, 1, h, w], broadcast over the
    /// channels), averaged over all but the batch dimension, times the per-sample weights (if any), then averaged over
    /// the batch. Without weights this equals <c>F.mse_loss(pred, target, reduction="mean")</c>; with a mask it is kohya's
    /// <c>apply_masked_loss</c> (the masked-out area counts as zero, not left out of the mean).
    /// </summary>
    public static Tensor WeightedMse(Tensor prediction, Tensor target, Tensor? weights = null, Tensor? mask = null)
    {
        using var scope = NewDisposeScope();
        var se = (prediction.to_type(ScalarType.Float32) - target.to_type(ScalarType.Float32)).pow(2);
        if (mask is not null) se = se * mask.to_type(ScalarType.Float32).to(se.device);
        var perSample = se.flatten(1).mean([1]);
        if (weights is not null) perSample = perSample * weights.to_type(ScalarType.Float32);
        return perSample.mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Per-element loss weights from masks in [0, 1]: clamp(mask, w, 1), so what a mask leaves out still counts with weight
    /// <paramref name="unmaskedWeight"/> (OneTrainer's <c>masked_losses</c> with its <c>unmasked_weight</c>; 0 is kohya's plain mask).
    /// </summary>
    public static Tensor MaskWeights(Tensor masks, double unmaskedWeight)
    {
        using var scope = NewDisposeScope();
        return masks.to_type(ScalarType.Float32).clamp(unmaskedWeight, 1.0).MoveToOuterDisposeScope();
    }

    /// <summary>Offset noise (diffusers: <c>noise += offset * randn(b, c, 1, 1)</c>), drawn from <paramref name="generator"/>.</summary>
    public static Tensor OffsetNoise(Tensor noise, double offset, Generator generator)
    {
        if (offset == 0) return noise.alias();
        using var scope = NewDisposeScope();
        var extra = randn([noise.shape[0], noise.shape[1], 1, 1], dtype: noise.dtype, device: CPU, generator: generator).to(noise.device);
        return (noise + extra * offset).MoveToOuterDisposeScope();
    }
}
