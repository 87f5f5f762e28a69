using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// The weights of one model folder as diffusers / transformers <c>save_pretrained</c> write them
/// (a pipeline component such as <c>unet/</c>, or a standalone model folder): <c>diffusion_pytorch_model</c>
/// (diffusers) or <c>model</c> (transformers) as one <c>.safetensors</c> file or as shards described by a
/// <c>.safetensors.index.json</c>. With a variant (e.g. "fp16") its file or index is preferred and, as in
/// diffusers' <c>from_pretrained</c>, the main weights are used where the folder has no such variant.
/// Pickle weights (.bin and friends) are refused with instructions to convert them.
/// </summary>
public static class ComponentWeights
{
    private static readonly string[] Stems = ["diffusion_pytorch_model", "model"];

    /// <summary>The weight file or shard index that <see cref="Open"/> reads from <paramref name="dir"/>.</summary>
    public static string Resolve(string dir, string? variant = null)
    {
        CheckVariant(variant);
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: model folder not found.");
        var candidates = new List<string>();
        if (variant is not null)
            foreach (var stem in Stems)
            {
                candidates.Add($"{stem}.{variant}.safetensors");
                candidates.Add($"{stem}.safetensors.index.{variant}.json");
            }
        foreach (var stem in Stems)
        {
            candidates.Add($"{stem}.safetensors");
            candidates.Add($"{stem}.safetensors.index.json");
        }
        foreach (var name in candidates)
        {
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        var pickle = Directory.GetFiles(dir).Where(PickleCheckpointException.IsPickleName).Order(StringComparer.Ordinal).FirstOrDefault();
        if (pickle is not null) throw new PickleCheckpointException(pickle);
        throw new FileNotFoundException($"{dir}: no weights (looked for {string.Join(", ", candidates)}).", Path.Combine(dir, $"{Stems[0]}.safetensors"));
    }

    /// <summary>The folder's weights by their upstream state-dict names; dispose after loading.</summary>
    public static IOwnedTensorSource Open(string dir, string? variant = null)
    {
        var path = Resolve(dir, variant);
        return path.EndsWith(".json", StringComparison.Ordinal) ? ShardedSafetensors.Open(path) : SafetensorsFile.Open(path);
    }

    /// <summary>A variant is part of a file name: a plain name such as "fp16", never a path.</summary>
    public static void CheckVariant(string? variant)
    {
        if (variant is not null && (variant.Length == 0 || variant.IndexOfAny(['/', '\\', '.']) >= 0))
            throw new ArgumentException($"variant '{variant}' is not a plain name such as \"fp16\"", nameof(variant));
    }
}
