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
        var device = vae.parameters().First().device;
        var x = scenes.Pixels(batch.Items, device);
        var posterior = vae.Encode(x);
        var eps = rng.Randn(posterior.Mean.shape, device: device);
        var reconstruction = vae.Decode(posterior.Mean + posterior.Std * eps);
        var kl = posterior.Kl().mean() / posterior.Mean[0].numel();
        return (nn.functional.mse_loss(reconstruction, x) + klWeight * kl).MoveToOuterDisposeScope();
    }
}
