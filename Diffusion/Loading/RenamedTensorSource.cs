using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// A view of another tensor source under new names: new name → (old name, optional reshape/slice). Used to
/// present an original-layout checkpoint with diffusers key names. Every mapping is checked against the
/// underlying source when constructed, so a wrong layout fails at open time naming the key, not mid-load.
/// </summary>
public sealed class RenamedTensorSource : IOwnedTensorSource
{
    private readonly ITensorSource _inner;
    private readonly IReadOnlyDictionary<string, TensorMapping> _map;
    private readonly Dictionary<string, long[]> _shapes;
    private readonly bool _ownsInner;

    public string Description { get; }
    public IReadOnlyCollection<string> Keys => _map.Keys.ToArray();
    public IReadOnlyDictionary<string, TensorMapping> Mappings => _map;

    /// <param name="ownsInner">Dispose <paramref name="inner"/> with this view (when it is disposable).</param>
    public RenamedTensorSource(ITensorSource inner, IReadOnlyDictionary<string, TensorMapping> map, string? description = null, bool ownsInner = false)
    {
        _inner = inner;
        _map = map;
        _ownsInner = ownsInner;
        Description = description ?? inner.Description;
        _shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (key, m) in map)
        {
            if (!inner.Contains(m.SourceKey))
                throw new KeyNotFoundException($"{inner.Description}: '{key}' maps to '{m.SourceKey}', which the source does not contain.");
            _shapes[key] = m.ShapeFrom(inner.ShapeOf(m.SourceKey), key, inner.Description);
        }
    }

    public bool Contains(string key) => _map.ContainsKey(key);

    public long[] ShapeOf(string key) =>
        _shapes.TryGetValue(key, out var s) ? (long[])s.Clone() : throw new KeyNotFoundException($"{Description}: no tensor named '{key}'.");

    public Tensor Read(string key, ScalarType? dtype = null)
    {
        if (!_map.TryGetValue(key, out var m)) throw new KeyNotFoundException($"{Description}: no tensor named '{key}'.");
        var source = _inner.Read(m.SourceKey, dtype);
        var result = m.Apply(source);
        if (!ReferenceEquals(result, source)) source.Dispose();
        return result;
    }

    public void Dispose()
    {
        if (_ownsInner && _inner is IDisposable d) d.Dispose();
    }
}
