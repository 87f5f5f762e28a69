using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// A diffusers pipeline folder as <c>save_pretrained</c> writes it: <c>model_index.json</c> and one
/// subfolder per component (<c>unet/</c>, <c>vae/</c>, <c>text_encoder/</c>, <c>tokenizer/</c>,
/// <c>scheduler/</c>). Gives each component's config path and its weights as an <see cref="ITensorSource"/>,
/// choosing the file with <see cref="ComponentWeights"/> (variant where the component has one, shards, pickle refused).
/// </summary>
public sealed class DiffusersModelFolder
{
    public const string ModelIndexName = "model_index.json";

    public string Root { get; }
    public string? Variant { get; }
    public ConfigJson ModelIndex { get; }

    private DiffusersModelFolder(string root, string? variant, ConfigJson index)
    {
        Root = root; Variant = variant; ModelIndex = index;
    }

    /// <param name="variant">Weight variant such as "fp16": used where a component has such a file.</param>
    public static DiffusersModelFolder Open(string path, string? variant = null)
    {
        var root = Path.GetFullPath(path);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{root}: diffusers model folder not found.");
        var indexPath = Path.Combine(root, ModelIndexName);
        if (!File.Exists(indexPath))
        {
            var nested = Directory.GetDirectories(root).Where(d => File.Exists(Path.Combine(d, ModelIndexName))).Select(Path.GetFileName).ToArray();
            throw new FileNotFoundException(
                $"{root}: not a diffusers pipeline folder (no {ModelIndexName})" +
                (nested.Length > 0 ? $"; the subfolder '{nested[0]}' is one." : "."), indexPath);
        }
        ComponentWeights.CheckVariant(variant);
        return new DiffusersModelFolder(root, variant, ConfigJson.Load(indexPath));
    }

    /// <summary>Components listed in model_index.json with a class (entries such as <c>"safety_checker": [null, null]</c> are absent).</summary>
    public IReadOnlyList<string> Components =>
        ModelIndex.Root.Where(kv => !kv.Key.StartsWith('_') && kv.Value is System.Text.Json.Nodes.JsonArray { Count: 2 } a && a[1] is not null)
            .Select(kv => kv.Key).ToArray();

    /// <summary>(library, class name) of a component, e.g. ("diffusers", "UNet2DConditionModel").</summary>
    public (string Library, string ClassName) ComponentClass(string component)
    {
        if (!Components.Contains(component))
            throw new KeyNotFoundException($"{Path.Combine(Root, ModelIndexName)}: no component '{component}' (has: {string.Join(", ", Components)}).");
        var a = (System.Text.Json.Nodes.JsonArray)ModelIndex.Root[component]!;
        string? Text(int i) => a[i] switch
        {
            null => null,
            System.Text.Json.Nodes.JsonValue v when v.TryGetValue<string>(out var t) => t,
            _ => throw ModelIndex.Invalid(component, "should be a [library, class name] pair of strings"),
        };
        return (Text(0) ?? "", Text(1) ?? throw ModelIndex.Invalid(component, "has no class name"));
    }

    /// <summary>
    /// Checks that model_index.json lists each of <paramref name="components"/> as a [library, class name] pair of
    /// strings: a malformed index is an <see cref="InvalidDataException"/> naming it and the entry.
    /// </summary>
    public void RequireComponents(params string[] components)
    {
        foreach (var c in components)
        {
            if (!ModelIndex.Has(c)) throw ModelIndex.Invalid(c, "is missing: a Stable Diffusion pipeline needs unet, vae, text_encoder, tokenizer and scheduler");
            if (ModelIndex.Get(c) is not System.Text.Json.Nodes.JsonArray { Count: 2 } a || a[1] is null)
                throw ModelIndex.Invalid(c, $"should be a [library, class name] pair, got {ModelIndex.Get(c).ToJsonString()}");
            ComponentClass(c);
        }
    }

    public string ComponentDir(string component)
    {
        ComponentClass(component);
        var dir = Path.Combine(Root, component);
        return Directory.Exists(dir) ? dir
            : throw new DirectoryNotFoundException($"{dir}: folder of component '{component}' (listed in {ModelIndexName}) not found.");
    }

    /// <summary>config.json of a model, scheduler_config.json of a scheduler, tokenizer_config.json of a tokenizer.</summary>
    public string ConfigPath(string component)
    {
        var dir = ComponentDir(component);
        foreach (var name in new[] { "config.json", "scheduler_config.json", "tokenizer_config.json" })
        {
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException($"{dir}: no config.json, scheduler_config.json or tokenizer_config.json for component '{component}'.", Path.Combine(dir, "config.json"));
    }

    public ConfigJson Config(string component) => ConfigJson.Load(ConfigPath(component));

    /// <summary>The weight file (or shard index) that <see cref="OpenWeights"/> reads for a component.</summary>
    public string WeightsPath(string component) => ComponentWeights.Resolve(ComponentDir(component), Variant);

    /// <summary>The component's weights by their upstream state-dict names; dispose after loading.</summary>
    public IOwnedTensorSource OpenWeights(string component) => ComponentWeights.Open(ComponentDir(component), Variant);
}
