using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// The VAE's loss, as the latent-diffusion autoencoder is trained without its perceptual and adversarial terms: the
/// mean squared error of the reconstruction from a posterior sample, plus <c>klWeight</c> × the mean KL divergence per
/// latent value (small: it only keeps the latent scale in check; the UNet sees latents × scaling_factor).
/// </summary>
public sealed class AutoencoderObjective(AutoencoderKL vae, SceneImages scenes, double klWeight = 1e-5) : ITrainingObjective
{
    public Tensor Loss(Batch batch, TrainingRng rng)
    {
        using var scope = NewDisposeScope();
        var weight = vae.parameters().First();
        var x = scenes.Pixels(batch.Items, weight.device);
        // A bf16 VAE (mixed precision) computes in bf16; the noise is drawn and the loss taken in fp32.
        var posterior = vae.Encode(x.to_type(weight.dtype));
        var eps = rng.Randn(posterior.Mean.shape, device: weight.device);
        var reconstruction = vae.Decode(posterior.Mean + posterior.Std * eps.to_type(weight.dtype));
        var kl = new DiagonalGaussianDistribution(cat([posterior.Mean, posterior.LogVar], 1).to_type(ScalarType.Float32)).Kl().mean() / posterior.Mean[0].numel();
        return (nn.functional.mse_loss(reconstruction.to_type(ScalarType.Float32), x) + klWeight * kl).MoveToOuterDisposeScope();
    }
}
