using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters.Inference;

/// <summary>
/// Bakes adapters into a copy of a checkpoint: W ← W + Σ scale · ΔW for every adapted layer. The output has the
/// source's layout (a diffusers folder stays a folder, a single file stays a single file with its own key names and
/// dtypes); every tensor an adapter does not touch is copied unchanged.
/// </summary>
public static class AdapterMerge
{
    /// <summary>The merged weights, by component ("unet", "text_encoder") and state-dict key, of the layers the adapters touch.</summary>
    public static Dictionary<string, Dictionary<string, Tensor>> MergedWeights(StableDiffusionModel model, IReadOnlyList<AdapterSpec> specs, Action<string>? warn = null)
    {
        var result = new Dictionary<string, Dictionary<string, Tensor>>();
        using var active = ActiveAdapters.Apply(model, specs, warn);
        foreach (var (component, root) in ActiveAdapters.Components(model))
        {
            var merged = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (path, layer) in AdapterInjector.AdaptedLayers(root))
            {
                layer.MergeAll();
                merged[path + ".weight"] = layer.weight.detach().to_type(ScalarType.Float32).cpu().clone().DetachFromDisposeScope();
                layer.UnmergeAll();
            }
            if (merged.Count > 0) result[component] = merged;
        }
        return result;
    }

    /// <param name="model">The checkpoint at <paramref name="sourcePath"/>, loaded in float32 (its layers are restored afterwards).</param>
    /// <param name="outPath">A folder for a diffusers source, a .safetensors file for a single-file source.</param>
    public static void Write(string sourcePath, StableDiffusionModel model, IReadOnlyList<AdapterSpec> specs, string outPath,
        string? configsFrom = null, Action<string>? warn = null) =>
        InvalidInput.Guard(() => WriteChecked(sourcePath, model, specs, outPath, configsFrom, warn));

    private static void WriteChecked(string sourcePath, StableDiffusionModel model, IReadOnlyList<AdapterSpec> specs, string outPath,
        string? configsFrom, Action<string>? warn)
    {
        var merged = MergedWeights(model, specs, warn);
        try
        {
            var layout = CheckpointLayout.Detect(sourcePath);
            if (layout.Format == CheckpointFormat.DiffusersFolder) WriteFolder(layout.Path, merged, outPath);
            else WriteSingleFile(layout.Path, merged, outPath, configsFrom);
        }
        finally
        {
            foreach (var d in merged.Values) foreach (var t in d.Values) t.Dispose();
        }
    }

    private static void WriteFolder(string source, Dictionary<string, Dictionary<string, Tensor>> merged, string outDir)
    {
        if (Path.GetFullPath(outDir) == Path.GetFullPath(source)) throw new ArgumentException($"--out {outDir}: must differ from the source model.");
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
            throw new IOException($"--out {outDir}: the folder exists and is not empty.");
        var folder = DiffusersModelFolder.Open(source);
        var rewritten = merged.Keys.ToHashSet();
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(source, file);
            var top = rel.Split(Path.DirectorySeparatorChar)[0];
            // Weights of every variant: x.safetensors, x.fp16.safetensors, shards, x.safetensors.index[.fp16].json.
            bool weights = Path.GetFileName(file).Contains(".safetensors", StringComparison.Ordinal);
            if (rewritten.Contains(top) && weights) continue;
            var target = Path.Combine(outDir, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        foreach (var (component, weights) in merged)
        {
            using var src = folder.OpenWeights(component);
            // One unsharded main file: diffusion_pytorch_model.safetensors or model.safetensors.
            var name = Path.GetFileName(folder.WeightsPath(component));
            name = name[..name.IndexOf(".safetensors", StringComparison.Ordinal)];
            if (folder.Variant is { } v && name.EndsWith("." + v, StringComparison.Ordinal)) name = name[..^(v.Length + 1)];
            name += ".safetensors";
            Substitute(Path.Combine(outDir, component, name), src, weights.ToDictionary(kv => kv.Key, kv => (kv.Key, (TensorMapping?)null, kv.Value)), null);
        }
    }

    private static void WriteSingleFile(string source, Dictionary<string, Dictionary<string, Tensor>> merged, string outPath, string? configsFrom)
    {
        if (Path.GetFullPath(outPath) == Path.GetFullPath(source)) throw new ArgumentException($"--out {outPath}: must differ from the source checkpoint.");
        using var ckpt = SingleFileCheckpoint.Open(source, configsFrom is null ? null : SingleFileConfigs.FromFolder(DiffusersModelFolder.Open(configsFrom)));
        using var file = SafetensorsFile.Open(source);
        // Each merged diffusers key goes back to the file's key (and slice, for SD 2.x's fused q/k/v) it came from.
        var substitutions = new List<(string FileKey, TensorMapping Mapping, Tensor Value)>();
        foreach (var (component, weights) in merged)
        {
            var mapped = (RenamedTensorSource)ckpt.Component(component);
            foreach (var (key, value) in weights)
            {
                var m = mapped.Mappings[key];
                substitutions.Add((m.SourceKey, m, value));
            }
        }
        var grouped = substitutions.GroupBy(s => s.FileKey).ToDictionary(g => g.Key, g => g.ToList());
        var pending = file.Entries.Values.Select(e => new SafetensorsWriter.Pending(e.Name, e.DType, e.Shape, () =>
        {
            if (!grouped.TryGetValue(e.Name, out var subs)) return file.Read(e.Name);
            using var scope = NewDisposeScope();
            var t = file.Read(e.Name, ScalarType.Float32);
            foreach (var (_, m, value) in subs)
            {
                var target = m.Narrow is var (dim, start, length) ? t.narrow(dim, start, length) : t;
                target.copy_(value.reshape(target.shape));
            }
            return t.to_type(e.DType.ToScalarType()).MoveToOuterDisposeScope();
        }));
        SafetensorsWriter.Write(outPath, pending, file.Metadata.Count > 0 ? file.Metadata : null);
    }

    private static SafetensorsDType StoredDType(ITensorSource source, string key)
    {
        if (source is SafetensorsFile f) return f.Entry(key).DType;
        using var probe = source.Read(key);
        return SafetensorsDTypes.FromScalarType(probe.dtype);
    }

    private static void Substitute(string outPath, ITensorSource source, Dictionary<string, (string Key, TensorMapping? M, Tensor Value)> replace, IReadOnlyDictionary<string, string>? metadata)
    {
        var pending = source.Keys.Select(k =>
        {
            var shape = source.ShapeOf(k);
            var dtype = StoredDType(source, k);
            return new SafetensorsWriter.Pending(k, dtype, shape, () =>
                replace.TryGetValue(k, out var r) ? r.Value.to_type(dtype.ToScalarType()) : source.Read(k));
        }).ToList();
        SafetensorsWriter.Write(outPath, pending, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
