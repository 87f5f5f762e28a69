using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Module = TorchSharp.torch.nn.Module;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>
/// The adapters of a DreamBooth run on a loaded SD model: injects the configured method into the UNet's attention
/// projections (and the text encoder's when --train-text-encoder), freezes everything else, and exposes the
/// parameter groups (UNet at --lr, text encoder at --text-encoder-lr; with loraplus each split into A at lr and
/// B plus 1-D tensors at ratio · lr, as <see cref="LoraPlus"/>). Adapter tensors are float32 whatever the base dtype.
/// Adapter initialisation draws from torch's global generator seeded with --seed, so a config reproduces its run.
/// </summary>
public sealed class AdapterSession : ITrainingTarget
{
    public const string FinalFile = "adapter.safetensors", KohyaFile = "adapter.kohya.safetensors";

    private readonly StableDiffusionModel _model;
    private readonly TrainConfig _config;
    private readonly Dictionary<string, Module> _components = new();
    private readonly List<AdapterLayer> _layers = new();

    public AdapterSession(StableDiffusionModel model, TrainConfig config)
    {
        _model = model;
        _config = config;
        foreach (var p in model.Unet.parameters().Concat(model.TextEncoder.parameters()).Concat(model.Vae.parameters())) p.requires_grad = false;

        var options = config.AdapterOptions;
        manual_seed(config.Seed);
        var reports = new List<InjectionReport>
        {
            AdapterInjector.Inject(model.Unet, options, InjectionTargets.UNetAttention, AdapterComponents.UNet),
        };
        _components[AdapterComponents.UNet] = model.Unet;
        if (config.TrainTextEncoder)
        {
            reports.Add(AdapterInjector.Inject(model.TextEncoder, options, InjectionTargets.TextEncoderAttention, AdapterComponents.TextEncoder));
            _components[AdapterComponents.TextEncoder] = model.TextEncoder;
        }
        Reports = reports;
        _layers.AddRange(reports.SelectMany(r => r.Layers).Select(l => l.Layer));

        var groups = new List<TrainableGroup>();
        foreach (var report in reports)
        {
            string component = report.Layers[0].Component;
            double lr = component == AdapterComponents.TextEncoder ? config.EffectiveTextEncoderLr : config.Lr;
            var names = report.Layers.SelectMany(l => l.Layer.AdapterParameters().Select(p => (p.Tensor.Handle, Name: $"{l.QualifiedPath}.{p.Name}")))
                .ToDictionary(x => x.Handle, x => x.Name);
            List<(string, Parameter)> Named(IEnumerable<Parameter> ps) => ps.Select(p => (names[p.Handle], p)).ToList();
            if (config.Method == AdapterMethod.LoraPlus)
            {
                var (a, b) = LoraPlus.Groups(report.Layers.Select(l => l.Layer));
                if (a.Count > 0) groups.Add(new TrainableGroup($"{component}.A", Named(a), lr));
                if (b.Count > 0) groups.Add(new TrainableGroup($"{component}.B", Named(b), lr * config.LoraPlusRatio));
            }
            else
            {
                var all = report.Layers.SelectMany(l => l.Layer.AdapterParameters()).Select(p => p.Tensor).Where(p => p.requires_grad);
                groups.Add(new TrainableGroup(component, Named(all), lr));
            }
        }
        ParameterGroups = groups;
    }

    public IReadOnlyList<InjectionReport> Reports { get; }
    public IReadOnlyList<AdapterLayer> Layers => _layers;
    public IReadOnlyList<TrainableGroup> ParameterGroups { get; }
    public IReadOnlyDictionary<string, Module> Components => _components;

    /// <summary>Sets SingLoRA's ramp to the absolute step count (also on resume) and recomputes SDS-LoRA's bases from the current tensors.</summary>
    public void OnOptimizerStep(long stepsTaken) => AdapterLayer.OnOptimizerStep(_layers, stepsTaken);

    public void WriteFinal(string runDirectory, long stepsTaken)
    {
        OnOptimizerStep(stepsTaken);
        var entries = AdapterComponents.Collect(_components);
        DpeftAdapterFile.Save(Path.Combine(runDirectory, FinalFile), entries, _model.FullHash ?? _model.Name, TrainConfigYaml.ToJson(_config));
        KohyaFormat.Export(Path.Combine(runDirectory, KohyaFile), entries);
    }
}
