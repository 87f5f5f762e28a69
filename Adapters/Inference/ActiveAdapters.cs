using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Diffusion.Pipelines;
using Module = TorchSharp.torch.nn.Module;

namespace DiffusionPeft.Adapters.Inference;

/// <summary>
/// Adapter files applied to a loaded model for inference, each at its own weight (several at once stack on the same
/// layers). Disposing removes them again and leaves the base model exactly as it was.
/// </summary>
public sealed class ActiveAdapters : IDisposable
{
    private readonly StableDiffusionModel _model;

    public IReadOnlyList<(AdapterSpec Spec, LoraImportResult Result)> Loaded { get; }

    private ActiveAdapters(StableDiffusionModel model, IReadOnlyList<(AdapterSpec, LoraImportResult)> loaded)
    {
        _model = model;
        Loaded = loaded;
    }

    public static IReadOnlyDictionary<string, Module> Components(StableDiffusionModel model) => new Dictionary<string, Module>
    {
        [AdapterComponents.UNet] = model.Unet,
        [AdapterComponents.TextEncoder] = model.TextEncoder,
    };

    /// <param name="warn">Receives what a file held that could not be applied (unknown keys, modules the model lacks).</param>
    public static ActiveAdapters Apply(StableDiffusionModel model, IReadOnlyList<AdapterSpec> specs, Action<string>? warn = null)
    {
        var loaded = new List<(AdapterSpec, LoraImportResult)>();
        var active = new ActiveAdapters(model, loaded);
        try
        {
            for (int i = 0; i < specs.Count; i++)
            {
                if (!File.Exists(specs[i].Path)) throw new FileNotFoundException($"{specs[i].Path}: adapter file not found.", specs[i].Path);
                var result = LoraImporter.Load(specs[i].Path, Components(model), specs[i].Scale, adapterName: $"adapter{i}");
                foreach (var w in result.Warnings) warn?.Invoke($"{specs[i].Path}: {w}");
                loaded.Add((specs[i], result));
            }
            return active;
        }
        catch
        {
            active.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var root in Components(_model).Values)
            foreach (var (path, _) in AdapterInjector.AdaptedLayers(root).ToList())
                AdapterInjector.Remove(root, path);
    }
}
