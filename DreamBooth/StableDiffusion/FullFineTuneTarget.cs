using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>
/// Full fine-tuning (diffusers' train_dreambooth.py without adapters, kohya's "fine tune"): every UNet weight trains at
/// --lr, the text encoder's too with --train-text-encoder (at --text-encoder-lr), the VAE stays frozen. The result is a
/// diffusers folder, RUN/model, with the trained weights in --save-dtype and every other component as loaded.
/// </summary>
public sealed class FullFineTuneTarget : ITrainingTarget
{
    public const string ModelFolder = "model";

    private readonly StableDiffusionModel _model;
    private readonly TrainConfig _config;

    public FullFineTuneTarget(StableDiffusionModel model, TrainConfig config)
    {
        if (model.DType != ScalarType.Float32)
            throw new ArgumentException($"full fine-tuning needs a float32 model (the weights themselves train), got {model.DType}");
        _model = model;
        _config = config;
        foreach (var p in model.Vae.parameters()) p.requires_grad = false;
        foreach (var p in model.TextEncoder.parameters()) p.requires_grad = config.TrainTextEncoder;
        foreach (var p in model.Unet.parameters()) p.requires_grad = true;
        var groups = new List<TrainableGroup>
        {
            new("unet", model.Unet.named_parameters().Select(p => ("unet." + p.name, p.parameter)).ToList(), config.Lr),
        };
        if (config.TrainTextEncoder)
            groups.Add(new("text_encoder", model.TextEncoder.named_parameters().Select(p => ("text_encoder." + p.name, p.parameter)).ToList(), config.EffectiveTextEncoderLr));
        ParameterGroups = groups;
    }

    public IReadOnlyList<TrainableGroup> ParameterGroups { get; }

    public long ParameterCount => ParameterGroups.Sum(g => g.Parameters.Sum(p => p.Parameter.numel()));

    public void OnOptimizerStep(long stepsTaken) { }

    public void WriteFinal(string runDirectory, long stepsTaken)
    {
        var folder = Path.Combine(runDirectory, ModelFolder);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);   // a finished run rewritten by a longer resume
        var dtype = _config.SaveDType switch { SaveDType.Bf16 => ScalarType.BFloat16, SaveDType.Fp16 => ScalarType.Float16, _ => ScalarType.Float32 };
        DiffusersFolderWriter.Write(_model, folder, dtype);
    }
}
