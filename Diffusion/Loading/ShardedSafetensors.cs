using System.Text.Json;
using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// A checkpoint split over several .safetensors files and described by a
/// <c>*.safetensors.index.json</c> (<c>{"metadata": {...}, "weight_map": {tensor: shard file}}</c>), as
/// diffusers and transformers write large models. Shards are opened (headers only) up front and
/// checked against the index: every listed tensor must be in its shard, and no shard may hold a tensor the
/// index does not list.
/// </summary>
public sealed class ShardedSafetensors : IOwnedTensorSource
{
    private readonly Dictionary<string, SafetensorsFile> _byKey;
    private readonly List<SafetensorsFile> _shards;

    public string IndexPath { get; }
    public string Description => IndexPath;
    public IReadOnlyCollection<string> Keys => _byKey.Keys;
    public IReadOnlyList<string> ShardPaths => _shards.Select(s => s.Path).ToArray();

    private ShardedSafetensors(string indexPath, Dictionary<string, SafetensorsFile> byKey, List<SafetensorsFile> shards)
    {
        IndexPath = indexPath; _byKey = byKey; _shards = shards;
    }

    public static ShardedSafetensors Open(string indexPath)
    {
        if (!File.Exists(indexPath)) throw new FileNotFoundException($"{indexPath}: shard index not found.", indexPath);
        var weightMap = ReadWeightMap(indexPath);
        var dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var byKey = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var (key, shardName) in weightMap)
            {
                if (!shards.TryGetValue(shardName, out var shard))
                {
                    var shardPath = Path.Combine(dir, shardName);
                    if (!File.Exists(shardPath))
                        throw new FileNotFoundException($"{indexPath}: shard '{shardName}' (holding '{key}') not found at {shardPath}.", shardPath);
                    shards[shardName] = shard = SafetensorsFile.Open(shardPath);
                }
                if (!shard.Contains(key)) throw new InvalidDataException($"{indexPath}: the index puts '{key}' in '{shardName}', which does not contain it.");
                byKey[key] = shard;
            }
            foreach (var (shardName, shard) in shards)
                foreach (var name in shard.Names)
                {
                    if (!byKey.TryGetValue(name, out var owner))
                        throw new InvalidDataException($"{indexPath}: shard '{shardName}' holds '{name}', which the index does not list.");
                    if (!ReferenceEquals(owner, shard))
                        throw new InvalidDataException($"{indexPath}: '{name}' is in shard '{shardName}' too, but the index puts it in '{Path.GetFileName(owner.Path)}'.");
                }
            return new ShardedSafetensors(indexPath, byKey, shards.Values.ToList());
        }
        catch
        {
            foreach (var s in shards.Values) s.Dispose();
            throw;
        }
    }

    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(indexPath)); }
        catch (JsonException ex) { throw new InvalidDataException($"{indexPath}: shard index is not valid JSON ({ex.Message}).", ex); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{indexPath}: shard index has no \"weight_map\" object.");
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String) throw new InvalidDataException($"{indexPath}: weight_map entry '{p.Name}' is not a file name.");
                var file = p.Value.GetString()!;
                // Shards live beside the index; a path elsewhere is either a broken or a hostile index.
                if (file.Length == 0 || file != Path.GetFileName(file) || file is "." or "..")
                    throw new InvalidDataException($"{indexPath}: weight_map entry '{p.Name}' names '{file}', not a file beside the index.");
                if (!file.EndsWith(".safetensors", StringComparison.Ordinal))
                    throw new InvalidDataException($"{indexPath}: weight_map entry '{p.Name}' names '{file}', not a .safetensors shard.");
                if (!map.TryAdd(p.Name, file)) throw new InvalidDataException($"{indexPath}: weight_map lists '{p.Name}' twice.");
            }
            if (map.Count == 0) throw new InvalidDataException($"{indexPath}: weight_map is empty.");
            return map;
        }
    }

    public bool Contains(string key) => _byKey.ContainsKey(key);
    public long[] ShapeOf(string key) => Shard(key).Entry(key).Shape;
    public Tensor Read(string key, ScalarType? dtype = null) => Shard(key).Read(key, dtype);

    /// <summary>The shard file that holds <paramref name="key"/>.</summary>
    public SafetensorsFile Shard(string key) =>
        _byKey.TryGetValue(key, out var f) ? f : throw new KeyNotFoundException($"{IndexPath}: no tensor named '{key}'.");

    public void Dispose()
    {
        foreach (var s in _shards) s.Dispose();
    }
}
