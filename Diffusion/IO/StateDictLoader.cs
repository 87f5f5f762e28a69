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
        var targets = module.state_dict().Select(kv => (Key: prefix + kv.Key, Target: kv.Value)).ToList();
        var (missing, misShaped) = Check(source, targets);
        var expected = new HashSet<string>(targets.Select(t => t.Key), StringComparer.Ordinal);
        var unexpected = source.Keys
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !expected.Contains(k) && !(ignoreUnexpected?.Invoke(k) ?? false))
            .OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count + misShaped.Count + unexpected.Count > 0)
            throw new StateDictMismatchException(source.Description, module.GetType().Name, missing, unexpected, misShaped);
        Copy(source, targets);
    }

    /// <summary>
    /// The one checked copy of named tensors into existing ones (adapter files, training checkpoints): every key must
    /// be present with its target's shape, or nothing is copied and <paramref name="fault"/> gets one message listing
    /// every missing and mis-shaped tensor.
    /// </summary>
    public static void LoadInto(ITensorSource source, IReadOnlyList<(string Key, Tensor Target)> targets, Func<string, Exception> fault)
    {
        var (missing, misShaped) = Check(source, targets);
        if (missing.Count + misShaped.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing tensors {List(missing)}");
            if (misShaped.Count > 0) parts.Add($"shape mismatches {List(misShaped)}");
            throw fault($"{source.Description}: {string.Join("; ", parts)}");
        }
        Copy(source, targets);

        static string List(List<string> items) => string.Join(", ", items.Take(5).Select(i => $"'{i}'")) + (items.Count > 5 ? $" and {items.Count - 5} more" : "");
    }

    private static (List<string> Missing, List<string> MisShaped) Check(ITensorSource source, IEnumerable<(string Key, Tensor Target)> targets)
    {
        var missing = new List<string>();
        var misShaped = new List<string>();
        foreach (var (key, t) in targets)
        {
            if (!source.Contains(key)) { missing.Add(key); continue; }
            var shape = source.ShapeOf(key);
            if (!shape.SequenceEqual(t.shape))
                misShaped.Add($"{key}: checkpoint [{string.Join(", ", shape)}], model [{string.Join(", ", t.shape)}]");
        }
        return (missing, misShaped);
    }

    private static void Copy(ITensorSource source, IEnumerable<(string Key, Tensor Target)> targets)
    {
        using var _ = no_grad();
        foreach (var (key, t) in targets)
        {
            if (source is SafetensorsFile file && t.device_type == DeviceType.CPU && t.is_contiguous()
                && file.Entry(key).DType.ToScalarType() == t.dtype)
            {
                file.ReadInto(file.Entry(key), t); // straight into the parameter's storage
                continue;
            }
            using var value = source.Read(key, t.dtype);
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
