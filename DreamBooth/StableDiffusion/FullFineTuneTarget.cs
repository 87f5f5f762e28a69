using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>
/// Full fine-tuning (diffusers' train_dreambooth.py without adapters, kohya's "fine tune"): every UNet weight trains at
/// --lr, the text encoder's too with --train-text-encoder (at --text-encoder-lr), the VAE stays frozen. The result is a
/// diffusers folder, RUN/model, with the trained weights in --save-dtype and every other component as loaded.
/// A model loaded in bf16 trains in mixed precision (as diffusers' --mixed_precision bf16): the forward and backward
/// run in bf16, while the optimizer, the checkpoints and the written model hold fp32 master weights; each step's bf16
/// gradients are handed to the masters and the updated masters copied back into the model (bf16 weights alone would
/// round most small updates away).
/// </summary>
public sealed class FullFineTuneTarget : ITrainingTarget, IDisposable
{
    public const string ModelFolder = "model";

    private readonly StableDiffusionModel _model;
    private readonly TrainConfig _config;
    /// <summary>Mixed precision: the trained weights' fp32 masters (null in fp32).</summary>
    private readonly MasterWeights? _masters;
    /// <summary>Mixed precision: the untrained components' fp32 weights as loaded, written in place of their bf16 rounding.</summary>
    private readonly Dictionary<string, Tensor> _untrainedFp32 = [];
    /// <summary>--whiten-conditioning: folded into the written UNet's cross-attention keys and values (null: none).</summary>
    private readonly ConditioningWhitening? _whitening;

    /// <param name="fp32Weights">Mixed precision: the model's weights as loaded in fp32, by parameter name
    /// ("unet.conv_in.weight"; copied, the caller keeps them): the masters start from the trained components', and the
    /// untrained components' are written with the model (a bf16 model alone would write its rounding). Without them the
    /// masters are the bf16 weights widened (the low bits of an fp32 checkpoint lost).</param>
    public FullFineTuneTarget(StableDiffusionModel model, TrainConfig config, IReadOnlyDictionary<string, Tensor>? fp32Weights = null,
        ConditioningWhitening? whitening = null)
    {
        if (model.DType is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new ArgumentException($"full fine-tuning trains in float32, or in bfloat16 with float32 master weights; got {model.DType}");
        _model = model;
        _config = config;
        _whitening = whitening;
        foreach (var p in model.Vae.parameters()) p.requires_grad = false;
        foreach (var p in model.TextEncoder.parameters()) p.requires_grad = config.TrainTextEncoder;
        foreach (var p in model.Unet.parameters()) p.requires_grad = true;
        var trained = new List<(string Group, double Lr, List<(string Name, Parameter Parameter)> Parameters)>
        {
            ("unet", config.Lr, model.Unet.named_parameters().Select(p => ("unet." + p.name, p.parameter)).ToList()),
        };
        if (config.TrainTextEncoder)
            trained.Add(("text_encoder", config.EffectiveTextEncoderLr, model.TextEncoder.named_parameters().Select(p => ("text_encoder." + p.name, p.parameter)).ToList()));
        if (model.DType == ScalarType.BFloat16)
        {
            _masters = new MasterWeights(trained.SelectMany(g => g.Parameters), fp32Weights);
            trained = trained.Select(g => (g.Group, g.Lr, g.Parameters.Select(p => (p.Name, _masters.MasterOf(p.Name))).ToList())).ToList();
            if (fp32Weights is not null)
                foreach (var (name, weight) in fp32Weights)
                    if (!_masters.Holds(name)) _untrainedFp32[name] = weight.clone();
        }
        ParameterGroups = trained.Select(g => new TrainableGroup(g.Group, g.Parameters, g.Lr)).ToList();
    }

    public IReadOnlyList<TrainableGroup> ParameterGroups { get; }

    public long ParameterCount => ParameterGroups.Sum(g => g.Parameters.Sum(p => p.Parameter.numel()));

    /// <summary>True when the model computes in bf16 and the optimizer updates fp32 masters.</summary>
    public bool MixedPrecision => _masters is not null;

    public void AfterBackward() => _masters?.AfterBackward();

    public void OnOptimizerStep(long stepsTaken) => ParametersReplaced();

    public void ParametersReplaced() => _masters?.CopyToModel();

    /// <summary>Frees the fp32 masters and kept weights (mixed precision); the model is the caller's.</summary>
    public void Dispose()
    {
        _masters?.Dispose();
        foreach (var weight in _untrainedFp32.Values) weight.Dispose();
    }

    public void WriteFinal(string runDirectory, long stepsTaken)
    {
        var folder = Path.Combine(runDirectory, ModelFolder);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);   // a finished run rewritten by a longer resume
        var dtype = _config.SaveDType switch { SaveDType.Bf16 => ScalarType.BFloat16, SaveDType.Fp16 => ScalarType.Float16, _ => ScalarType.Float32 };
        Dictionary<string, Tensor>? overrides = null;
        if (MixedPrecision)
        {
            overrides = new Dictionary<string, Tensor>(_untrainedFp32);
            foreach (var (name, master) in ParameterGroups.SelectMany(g => g.Parameters)) overrides[name] = master;
        }
        using var scope = NewDisposeScope();
        HashSet<string>? folded = null;
        if (_whitening is not null)
        {
            overrides ??= [];
            folded = [];
            foreach (var (name, projection) in ConditioningWhitening.ContextProjections(_model.Unet))
            {
                var key = $"unet.{name}.weight";
                overrides[key] = _whitening.Fold(overrides.TryGetValue(key, out var master) ? master : projection.weight!.detach());
                folded.Add(key);
            }
        }
        // W·P rounded to bf16 errs 8× a plain weight's rounding (P's gain on the faint directions: measured on the toy
        // model's keys and values, 1.3% of their output against 0.16%), so the folded projections stay fp32 in a bf16
        // or fp16 folder (a few kB).
        DiffusersFolderWriter.Write(_model, folder, dtype, overrides, folded);
    }
}
