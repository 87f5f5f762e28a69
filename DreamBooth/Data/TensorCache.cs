using System.Security.Cryptography;
using System.Text;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.DreamBooth.Config;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Data;

/// <summary>
/// Caches computed tensors (VAE latent moments, text embeddings) by a key that names everything they depend on
/// (file content hash, crop, flip, encoder identity...): in memory, or on disk as one .safetensors per key
/// (written atomically; an unreadable file is recomputed), or not at all. Returned tensors are fresh handles the
/// caller may dispose.
/// </summary>
public sealed class TensorCache : IDisposable
{
    private readonly LatentCacheMode _mode;
    private readonly string? _directory;
    private readonly Dictionary<string, Tensor> _memory = new(StringComparer.Ordinal);
    private readonly Action<string>? _warn;
    private readonly Device? _device;

    public int Hits { get; private set; }
    public int Misses { get; private set; }

    /// <param name="device">Where tensors read back from disk go (the model's device); null: the CPU.</param>
    public TensorCache(LatentCacheMode mode, string? directory = null, Action<string>? warn = null, Device? device = null)
    {
        _device = device;
        if (mode == LatentCacheMode.Disk && directory is null) throw new ArgumentException("a disk cache needs a directory");
        _mode = mode;
        _directory = directory;
        _warn = warn;
        if (directory is not null && mode == LatentCacheMode.Disk) Directory.CreateDirectory(directory);
    }

    public static string Key(params object[] parts) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\u001f", parts.Select(p => Convert.ToString(p, System.Globalization.CultureInfo.InvariantCulture))))));

    public Tensor GetOrAdd(string key, Func<Tensor> compute)
    {
        switch (_mode)
        {
            case LatentCacheMode.None:
                Misses++;
                return compute();
            case LatentCacheMode.Memory:
                if (_memory.TryGetValue(key, out var hit)) { Hits++; return hit.alias(); }
                Misses++;
                var value = Compute(compute);
                _memory[key] = value;
                return value.alias();
            default:
                var path = Path.Combine(_directory!, key + ".safetensors");
                if (File.Exists(path))
                {
                    try
                    {
                        using var file = SafetensorsFile.Open(path);
                        var t = file.Read("value", device: _device);
                        Hits++;
                        return t;
                    }
                    catch (Exception ex) when (ex is InvalidSafetensorsException or IOException or KeyNotFoundException)
                    {
                        _warn?.Invoke($"cache file {path} is unreadable ({ex.Message}); recomputing it");
                    }
                }
                Misses++;
                using (var computed = Compute(compute))
                {
                    SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["value"] = computed });
                    return computed.alias();
                }
        }
    }

    private static Tensor Compute(Func<Tensor> compute)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return compute().detach().contiguous().MoveToOuterDisposeScope().DetachFromDisposeScope();
    }

    public void Dispose()
    {
        foreach (var t in _memory.Values) t.Dispose();
        _memory.Clear();
    }
}
