using DiffusionPeft.Diffusion.Schedulers;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>The VAE's encoder side: pixels [B, 3, H, W] in [-1, 1] → latent moments [B, 2C, H/8, W/8] (mean and logvar, as <c>latent_dist.parameters</c>).</summary>
public interface ILatentEncoder
{
    /// <summary>Names the weights and dtype (cache keys include it).</summary>
    string Identity { get; }
    double ScalingFactor { get; }
    Tensor EncodeMoments(Tensor pixels);
}

/// <summary>The text encoder: prompts → hidden states [B, 77, D] (with grad when its adapters train).</summary>
public interface IPromptEncoder
{
    string Identity { get; }
    Tensor Encode(IReadOnlyList<string> prompts);
}

/// <summary>The training side of a noise scheduler (DDPM config of the base model).</summary>
public interface INoiseSchedule
{
    int NumTrainTimesteps { get; }
    PredictionType Prediction { get; }
    Tensor AlphasCumprod { get; }
    Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps);
    Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps);
}

/// <summary>The UNet with its adapters: predicts ε, v or x0 for noisy latents.</summary>
public interface IDenoiser
{
    Tensor Predict(Tensor noisyLatents, Tensor timesteps, Tensor encoderHiddenStates);
}
