using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// Where one renamed tensor comes from: a key of the underlying source, optionally narrowed along one
/// dimension (a slice of a fused projection such as OpenCLIP's in_proj_weight) and then reshaped (e.g. a
/// [C, C, 1, 1] 1x1-conv weight read as a [C, C] Linear weight). Transforms only move elements, never
/// change values, so the dtype conversion can happen at read time.
/// </summary>
public sealed record TensorMapping(string SourceKey, long[]? Reshape = null, (int Dim, long Start, long Length)? Narrow = null)
{
    public static TensorMapping Rename(string sourceKey) => new(sourceKey);
    public static TensorMapping Reshaped(string sourceKey, params long[] shape) => new(sourceKey, Reshape: shape);
    public static TensorMapping Slice(string sourceKey, int dim, long start, long length) => new(sourceKey, Narrow: (dim, start, length));

    /// <summary>The resulting shape for a source tensor of <paramref name="sourceShape"/>, or an error naming the fault.</summary>
    public long[] ShapeFrom(long[] sourceShape, string targetKey, string where)
    {
        var shape = (long[])sourceShape.Clone();
        if (Narrow is var (dim, start, length))
        {
            if (dim < 0 || dim >= shape.Length || start < 0 || length < 0 || start + length > shape[dim])
                throw new InvalidDataException($"{where}: cannot take [{start}, {start + length}) along dimension {dim} of '{SourceKey}' [{string.Join(", ", sourceShape)}] for '{targetKey}'.");
            shape[dim] = length;
        }
        if (Reshape is { } r)
        {
            long have = shape.Aggregate(1L, (a, b) => a * b), want = r.Aggregate(1L, (a, b) => a * b);
            if (have != want)
                throw new InvalidDataException($"{where}: cannot reshape '{SourceKey}' [{string.Join(", ", shape)}] to [{string.Join(", ", r)}] for '{targetKey}'.");
            shape = (long[])r.Clone();
        }
        return shape;
    }

    /// <summary>Applies the transform; the result owns its storage (the input may be disposed).</summary>
    public Tensor Apply(Tensor source)
    {
        var t = source;
        if (Narrow is var (dim, start, length)) t = t.narrow(dim, start, length);
        if (Reshape is { } r) t = t.reshape(r);
        return ReferenceEquals(t, source) ? source : t.contiguous().clone();
    }
}
