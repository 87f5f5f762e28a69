using DiffusionPeft.Core.IO;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DiffusionPeft.Metrics;

/// <summary>The model files of an evaluation (ONNX exports of DINO ViT-S/16 and CLIP ViT-B/32 vision/text).</summary>
public sealed record MetricModelPaths(string Dino, string ClipVision, string ClipText);

/// <summary>An ONNX Runtime session with checks that the graph has the inputs and outputs a metric expects.</summary>
public sealed class OnnxModel : IDisposable
{
    public string Path { get; }
    public string Role { get; }
    public InferenceSession Session { get; }
    private readonly Lazy<string> _sha256;

    public OnnxModel(string path, string role, SessionOptions? options = null)
    {
        Path = System.IO.Path.GetFullPath(path);
        Role = role;
        if (!File.Exists(Path)) throw new FileNotFoundException($"{role} model not found: {Path}", Path);
        try { Session = options is null ? new InferenceSession(Path) : new InferenceSession(Path, options); }
        catch (OnnxRuntimeException e) { throw new InvalidDataException($"{Path}: not a loadable ONNX model for {role} ({e.Message})", e); }
        _sha256 = new(() => FileHash.Sha256(Path));
    }

    /// <summary>SHA-256 of the model file: the model's identity in embedding caches.</summary>
    public string Sha256 => _sha256.Value;

    /// <summary>The input <paramref name="name"/>, required to be a tensor of <paramref name="type"/> and <paramref name="rank"/>.</summary>
    public NodeMetadata RequireInput(string name, TensorElementType type, int rank, params string[] allowedExtraInputs)
    {
        var inputs = Session.InputMetadata;
        if (!inputs.TryGetValue(name, out var meta))
            throw Unfit($"has no input '{name}' (its inputs: {Describe(inputs)})");
        var extra = inputs.Keys.Where(k => k != name && !allowedExtraInputs.Contains(k)).ToList();
        if (extra.Count > 0)
            throw Unfit($"needs inputs this metric does not provide: {string.Join(", ", extra)} (inputs: {Describe(inputs)}); export the {Role} sub-model alone");
        Check(name, meta, type, rank);
        return meta;
    }

    public NodeMetadata RequireOutput(string name, TensorElementType type, int rank)
    {
        var outputs = Session.OutputMetadata;
        if (!outputs.TryGetValue(name, out var meta))
            throw Unfit($"has no output '{name}' (its outputs: {Describe(outputs)})");
        Check(name, meta, type, rank);
        return meta;
    }

    /// <summary>A fixed dimension must equal <paramref name="expected"/>; a symbolic one (-1) accepts anything.</summary>
    public void RequireDim(string tensor, NodeMetadata meta, int axis, int expected, string meaning)
    {
        int d = meta.Dimensions[axis];
        if (d >= 0 && d != expected)
            throw Unfit($"'{tensor}' has {meaning} {d} at axis {axis}, expected {expected} (shape {Shape(meta)})");
    }

    public InvalidDataException Unfit(string fault) =>
        new($"{Path}: not a usable {Role} model: {fault}");

    private void Check(string name, NodeMetadata meta, TensorElementType type, int rank)
    {
        if (!meta.IsTensor) throw Unfit($"'{name}' is not a tensor");
        if (meta.ElementDataType != type) throw Unfit($"'{name}' has element type {meta.ElementDataType}, expected {type}");
        if (meta.Dimensions.Length != rank) throw Unfit($"'{name}' has rank {meta.Dimensions.Length} (shape {Shape(meta)}), expected rank {rank}");
    }

    public static string Shape(NodeMetadata m) =>
        "[" + string.Join(", ", m.Dimensions.Select((d, i) => d >= 0 ? d.ToString() : (m.SymbolicDimensions is { } s && i < s.Length && s[i].Length > 0 ? s[i] : "?"))) + "]";

    private static string Describe(IReadOnlyDictionary<string, NodeMetadata> nodes) =>
        string.Join(", ", nodes.Select(kv => $"{kv.Key} {(kv.Value.IsTensor ? kv.Value.ElementDataType.ToString() : "non-tensor")} {(kv.Value.IsTensor ? Shape(kv.Value) : "")}"));

    public void Dispose() => Session.Dispose();
}
