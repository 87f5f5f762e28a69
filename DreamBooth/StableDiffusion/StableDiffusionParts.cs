using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>
/// A loaded <see cref="StableDiffusionModel"/> seen through the trainer's interfaces: the VAE encoder (latent moments),
/// the CLIP text encoder (with the pipeline's tokenization), the UNet (its injected adapters train), and the training
/// side of a DDPM scheduler built from the model's scheduler config (as diffusers' scripts load DDPMScheduler).
/// Inputs are cast to the model's dtype (bf16 base) and outputs back to float32.
/// </summary>
public sealed class StableDiffusionParts : ILatentEncoder, IPromptEncoder, IDenoiser, INoiseSchedule, IDisposable
{
    private readonly StableDiffusionModel _model;
    private readonly DdpmScheduler _scheduler;
    private readonly StableDiffusionPipeline _pipeline;

    public StableDiffusionParts(StableDiffusionModel model)
    {
        _model = model;
        _scheduler = new DdpmScheduler(model.SchedulerConfig);
        _pipeline = new StableDiffusionPipeline(model, _scheduler);
        var id = model.FullHash ?? model.Name;
        Identity = $"{id}|{Diffusion.TorchOptions.Name(model.DType)}";
    }

    /// <summary>The base model's weights and dtype: part of every cache key.</summary>
    public string Identity { get; }

    string ILatentEncoder.Identity => "vae|" + Identity;
    string IPromptEncoder.Identity => "text|" + Identity;
    public double ScalingFactor => _model.Vae.Config.ScalingFactor;

    public Tensor EncodeMoments(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = pixels.to(_model.DType, _model.Device);
        var moments = _model.Vae.quant_conv.call(_model.Vae.encoder.call(x));
        return moments.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    public Tensor Encode(IReadOnlyList<string> prompts) => _pipeline.EncodePrompts(prompts, clipSkip: 0);

    public Tensor Predict(Tensor noisyLatents, Tensor timesteps, Tensor encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        var output = _model.Unet.forward(noisyLatents.to(_model.DType, _model.Device), timesteps.to(_model.Device),
            encoderHiddenStates.to(_model.DType, _model.Device));
        return output.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    public int NumTrainTimesteps => _model.SchedulerConfig.NumTrainTimesteps;
    public PredictionType Prediction => _model.SchedulerConfig.PredictionType;
    public Tensor AlphasCumprod => _scheduler.AlphasCumprod;
    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => _scheduler.AddNoise(original, noise, timesteps);
    public Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps) => _scheduler.GetVelocity(sample, noise, timesteps);

    public void Dispose() => _scheduler.Dispose();
}
