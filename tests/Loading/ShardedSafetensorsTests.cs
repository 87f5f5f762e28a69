using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Tests.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Loading;

public sealed class ShardedSafetensorsTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    /// <summary>Writes tensors round-robin into <paramref name="shards"/> files plus a diffusers-style index; returns the index path.</summary>
    internal static string WriteShards(string dir, string stem, IReadOnlyDictionary<string, Tensor> tensors, int shards)
    {
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var map = new JsonObject();
        for (int s = 0; s < shards; s++)
        {
            var file = $"{stem}-{s + 1:00000}-of-{shards:00000}.safetensors";
            var part = names.Where((_, i) => i % shards == s).ToDictionary(n => n, n => tensors[n]);
            SafetensorsWriter.Write(Path.Combine(dir, file), part);
            foreach (var n in part.Keys) map[n] = file;
        }
        var index = Path.Combine(dir, $"{stem}.safetensors.index.json");
        AtomicFile.WriteAllText(index, new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 0 }, ["weight_map"] = map }.ToJsonString());
        return index;
    }

    private Dictionary<string, Tensor> Sample() => new()
    {
        ["a.weight"] = arange(6f).reshape(2, 3),
        ["a.bias"] = arange(2f),
        ["b.weight"] = ones(4, 4, dtype: ScalarType.Float16),
        ["c"] = tensor(3L),
    };

    [Fact]
    public void ReadsEveryTensorFromItsShard()
    {
        using var scope = NewDisposeScope();
        var tensors = Sample();
        var index = WriteShards(_tmp.Path, "model", tensors, 2);
        using var src = ShardedSafetensors.Open(index);
        Assert.Equal(2, src.ShardPaths.Count);
        Assert.Equal(tensors.Keys.Order(), src.Keys.Order());
        foreach (var (k, t) in tensors)
        {
            Assert.Equal(t.shape, src.ShapeOf(k));
            var back = src.Read(k);
            Assert.Equal(t.dtype, back.dtype);
            Assert.True(back.equal(t).all().item<bool>(), k);
        }
        Assert.Equal(ScalarType.Float32, src.Read("b.weight", ScalarType.Float32).dtype);
        Assert.Contains(index, Assert.Throws<KeyNotFoundException>(() => src.Read("zzz")).Message);
    }

    private string Index(string json) { var p = _tmp.File("bad.safetensors.index.json"); File.WriteAllText(p, json); return p; }

    [Fact]
    public void InconsistentIndexesAreRejected()
    {
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(_tmp.File("s1.safetensors"), new Dictionary<string, Tensor> { ["x"] = ones(1), ["y"] = ones(1) });
        SafetensorsWriter.Write(_tmp.File("s2.safetensors"), new Dictionary<string, Tensor> { ["x"] = ones(1) });

        Assert.Contains("not valid JSON", Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(Index("{"))).Message);
        Assert.Contains("weight_map", Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(Index("{\"metadata\":{}}"))).Message);
        Assert.Contains("'../s1.safetensors'", Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(Index("{\"weight_map\":{\"x\":\"../s1.safetensors\"}}"))).Message);
        Assert.Contains("not a .safetensors", Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(Index("{\"weight_map\":{\"x\":\"s1.bin\"}}"))).Message);
        var missingShard = Assert.Throws<FileNotFoundException>(() => ShardedSafetensors.Open(Index("{\"weight_map\":{\"x\":\"s9.safetensors\"}}")));
        Assert.Contains("'s9.safetensors'", missingShard.Message);
        Assert.Contains("does not contain it", Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(Index("{\"weight_map\":{\"z\":\"s1.safetensors\"}}"))).Message);
        var unlisted = Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(Index("{\"weight_map\":{\"x\":\"s1.safetensors\"}}")));
        Assert.Contains("'y', which the index does not list", unlisted.Message);
        var twice = Assert.Throws<InvalidDataException>(() => ShardedSafetensors.Open(Index("{\"weight_map\":{\"x\":\"s1.safetensors\",\"y\":\"s1.safetensors\",\"w\":\"s2.safetensors\"}}")));
        Assert.Contains("does not contain it", twice.Message);
    }
}

public sealed class RenamedTensorSourceTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void RenamesReshapesAndSlices()
    {
        using var scope = NewDisposeScope();
        var path = _tmp.File("src.safetensors");
        var conv = arange(16f).reshape(4, 4, 1, 1);
        var fused = arange(12f).reshape(6, 2);
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["conv.weight"] = conv.to_type(ScalarType.Float16), ["in_proj"] = fused });
        using var file = SafetensorsFile.Open(path);
        var view = new RenamedTensorSource(file, new Dictionary<string, TensorMapping>
        {
            ["to_q.weight"] = TensorMapping.Reshaped("conv.weight", 4, 4),
            ["q"] = TensorMapping.Slice("in_proj", 0, 0, 2),
            ["v"] = TensorMapping.Slice("in_proj", 0, 4, 2),
            ["same"] = TensorMapping.Rename("in_proj"),
        });
        Assert.Equal(new long[] { 4, 4 }, view.ShapeOf("to_q.weight"));
        Assert.Equal(new long[] { 2, 2 }, view.ShapeOf("v"));
        var q = view.Read("to_q.weight", ScalarType.Float32);
        Assert.Equal(ScalarType.Float32, q.dtype);
        Assert.True(q.equal(conv.reshape(4, 4)).all().item<bool>());
        Assert.True(view.Read("v").equal(fused.narrow(0, 4, 2)).all().item<bool>());
        Assert.True(view.Read("same").equal(fused).all().item<bool>());
        Assert.False(view.Contains("in_proj"));
        Assert.Throws<KeyNotFoundException>(() => view.Read("in_proj"));

        Assert.Contains("'absent'", Assert.Throws<KeyNotFoundException>(() =>
            new RenamedTensorSource(file, new Dictionary<string, TensorMapping> { ["x"] = TensorMapping.Rename("absent") })).Message);
        Assert.Contains("cannot reshape", Assert.Throws<InvalidDataException>(() =>
            new RenamedTensorSource(file, new Dictionary<string, TensorMapping> { ["x"] = TensorMapping.Reshaped("in_proj", 5, 5) })).Message);
        Assert.Contains("cannot take", Assert.Throws<InvalidDataException>(() =>
            new RenamedTensorSource(file, new Dictionary<string, TensorMapping> { ["x"] = TensorMapping.Slice("in_proj", 0, 5, 2) })).Message);
    }
}
