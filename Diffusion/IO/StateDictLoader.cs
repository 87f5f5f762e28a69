using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.IO;

/// <summary>
/// Strict loading of a module's state dict from named tensors. Module and parameter names equal the
/// upstream checkpoint keys, so no rename table is involved: missing, unexpected and mis-shaped keys are
/// all collected and reported in one <see cref="StateDictMismatchException"/>.
/// </summary>
public static class StateDictLoader
{
    /// <param name="prefix">Prepended to every module key to find it in the source (e.g. "unet.").</param>
    /// <param name="ignoreUnexpected">Keys of the source to tolerate although the module has no such entry.</param>
    public static void Load(nn.Module module, ITensorSource source, string prefix = "", Func<string, bool>? ignoreUnexpected = null)
    {
        var target = module.state_dict();
        var missing = new List<string>();
        var misShaped = new List<string>();
        foreach (var (key, t) in target)
        {
            var srcKey = prefix + key;
            if (!source.Contains(srcKey)) { missing.Add(srcKey); continue; }
            var shape = source.ShapeOf(srcKey);
            if (!shape.SequenceEqual(t.shape))
                misShaped.Add($"{srcKey}: checkpoint [{string.Join(", ", shape)}], model [{string.Join(", ", t.shape)}]");
        }
        var expected = new HashSet<string>(target.Keys.Select(k => prefix + k), StringComparer.Ordinal);
        var unexpected = source.Keys
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !expected.Contains(k) && !(ignoreUnexpected?.Invoke(k) ?? false))
            .OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count + misShaped.Count + unexpected.Count > 0)
            throw new StateDictMismatchException(source.Description, module.GetType().Name, missing, unexpected, misShaped);

        using var _ = no_grad();
        foreach (var (key, t) in target)
        {
            var srcKey = prefix + key;
            if (source is SafetensorsFile file && t.device_type == DeviceType.CPU && t.is_contiguous()
                && file.Entry(srcKey).DType.ToScalarType() == t.dtype)
            {
                file.ReadInto(file.Entry(srcKey), t); // straight into the parameter's storage
                continue;
            }
            using var value = source.Read(srcKey, t.dtype);
            t.copy_(value);
        }
    }
}

public sealed class StateDictMismatchException(string source, string model, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<string> misShaped)
    : Exception(Describe(source, model, missing, unexpected, misShaped))
{
    public IReadOnlyList<string> Missing { get; } = missing;
    public IReadOnlyList<string> Unexpected { get; } = unexpected;
    public IReadOnlyList<string> MisShaped { get; } = misShaped;

    private static string Describe(string source, string model, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<string> misShaped)
    {
        var lines = new List<string> { $"{source}: checkpoint does not fit {model}:" };
        void Section(string title, IReadOnlyList<string> keys)
        {
            if (keys.Count == 0) return;
            lines.Add($"  {title} ({keys.Count}):");
            lines.AddRange(keys.Take(50).Select(k => "    " + k));
            if (keys.Count > 50) lines.Add($"    ... and {keys.Count - 50} more");
        }
        Section("missing keys", missing);
        Section("unexpected keys", unexpected);
        Section("shape mismatches", misShaped);
        return string.Join(Environment.NewLine, lines);
    }
}
