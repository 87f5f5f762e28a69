using System.Buffers.Binary;
using System.Text.Json;
using TorchSharp;
using DiffusionPeft.Core.IO;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.IO;

/// <summary>
/// Writes .safetensors files atomically: a temporary file beside the target, then a rename. A failure at
/// any point (bad input, a producer that throws, a full disk) leaves an existing target untouched and no
/// temporary file behind. Tensor bytes go from native storage to the file in chunks, never through a
/// managed copy of the whole tensor.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// A tensor to write whose data is produced only when its turn comes (e.g. read from another file), so
    /// converting a multi-GB checkpoint holds one tensor at a time. The produced tensor must have the
    /// declared dtype and shape; it is disposed after writing if it was created by <see cref="Produce"/>.
    /// </summary>
    public sealed record Pending(string Name, SafetensorsDType DType, long[] Shape, Func<Tensor> Produce);

    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors.Select(kv => new Pending(kv.Key, SafetensorsDTypes.FromScalarType(kv.Value.dtype), kv.Value.shape, () => kv.Value)), metadata);

    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, (IEnumerable<KeyValuePair<string, Tensor>>)tensors, metadata);

    /// <summary>
    /// Writes every tensor of <paramref name="source"/> as <paramref name="dtype"/>, reading one tensor at a time
    /// (e.g. a single-file checkpoint's UNet saved under diffusers names).
    /// </summary>
    public static void Write(string path, ITensorSource source, ScalarType dtype, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var st = SafetensorsDTypes.FromScalarType(dtype);
        Write(path, source.Keys.Select(k => new Pending(k, st, source.ShapeOf(k), () => source.Read(k, dtype))), metadata);
    }

    public static void Write(string path, IEnumerable<Pending> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var items = tensors.OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in items)
        {
            if (item.Name == "__metadata__") throw new ArgumentException($"{path}: '__metadata__' is reserved and cannot name a tensor");
            if (!names.Add(item.Name)) throw new ArgumentException($"{path}: duplicate tensor name '{item.Name}'");
            if (item.Shape.Any(d => d < 0)) throw new ArgumentException($"{path}: tensor '{item.Name}' has a negative dimension");
        }
        var header = BuildHeader(items, metadata);

        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
            stream.Write(len);
            stream.Write(header);
            foreach (var item in items) WriteData(path, stream, item);
        });
    }

    private static byte[] BuildHeader(List<Pending> items, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) json.WriteString(k, v);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var item in items)
            {
                long bytes = checked(item.Shape.Aggregate(1L, (a, b) => a * b) * item.DType.ElementSize());
                json.WriteStartObject(item.Name);
                json.WriteString("dtype", item.DType.ToString());
                json.WriteStartArray("shape");
                foreach (var d in item.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        // Pad the header with spaces to a multiple of 8 so the data section is aligned (as upstream does).
        int pad = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < pad; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static void WriteData(string path, Stream stream, Pending item)
    {
        using var scope = torch.NewDisposeScope();
        var t = item.Produce();
        if (t.dtype != item.DType.ToScalarType() || !t.shape.SequenceEqual(item.Shape))
            throw new InvalidOperationException(
                $"{path}: tensor '{item.Name}' was declared {item.DType} [{string.Join(", ", item.Shape)}] but produced {t.dtype} [{string.Join(", ", t.shape)}]");
        if (t.numel() == 0) return;
        var flat = t.detach().cpu().contiguous().view(-1);
        long elem = item.DType.ElementSize();
        long chunk = Math.Max(1, (64L << 20) / elem);
        for (long s = 0; s < flat.numel(); s += chunk)
            stream.Write(flat.narrow(0, s, Math.Min(chunk, flat.numel() - s)).bytes);
    }
}
