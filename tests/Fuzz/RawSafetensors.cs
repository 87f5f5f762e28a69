using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// A safetensors file as plain data (name, dtype, shape, bytes; metadata), read and written without the library's
/// reader, so a fuzz case can change what a tensor says about itself (shape, rank, dtype, name) and still produce a
/// structurally valid file that reaches the loaders above the container.
/// </summary>
public sealed class RawSafetensors
{
    public sealed record Tensor(string Name, string DType, long[] Shape, byte[] Data);

    public List<Tensor> Tensors { get; } = [];
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    private static readonly Dictionary<string, int> Sizes = new()
    {
        ["F64"] = 8, ["I64"] = 8, ["F32"] = 4, ["I32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    public static IReadOnlyList<string> DTypes => Sizes.Keys.ToArray();

    public static RawSafetensors Read(byte[] file)
    {
        long n = BinaryPrimitives.ReadInt64LittleEndian(file);
        var header = JsonNode.Parse(file.AsSpan(8, (int)n))!.AsObject();
        var raw = new RawSafetensors();
        long data = 8 + n;
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__") { foreach (var (k, v) in node!.AsObject()) raw.Metadata[k] = (string)v!; continue; }
            var o = node!.AsObject();
            var off = o["data_offsets"]!.AsArray();
            long begin = (long)off[0]!, end = (long)off[1]!;
            raw.Tensors.Add(new Tensor(name, (string)o["dtype"]!, o["shape"]!.AsArray().Select(d => (long)d!).ToArray(),
                file.AsSpan((int)(data + begin), (int)(end - begin)).ToArray()));
        }
        return raw;
    }

    public byte[] Write()
    {
        var header = new JsonObject();
        if (Metadata.Count > 0) header["__metadata__"] = new JsonObject(Metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        long offset = 0;
        foreach (var t in Tensors)
        {
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Data.Length),
            };
            offset += t.Data.Length;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        using var ms = new MemoryStream();
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, json.Length);
        ms.Write(len);
        ms.Write(json);
        foreach (var t in Tensors) ms.Write(t.Data);
        return ms.ToArray();
    }

    /// <summary>The same tensor with another shape and/or dtype; its bytes are cut or zero-padded to fit (at most 16 MB).</summary>
    public static Tensor Reshaped(Tensor t, long[] shape, string? dtype = null)
    {
        dtype ??= t.DType;
        double count = shape.Aggregate(1.0, (a, d) => a * d) * Sizes[dtype];
        if (count > 16 << 20) return t;
        var data = new byte[(long)count];
        Array.Copy(t.Data, data, Math.Min(t.Data.Length, data.Length));
        return t with { Shape = shape, DType = dtype, Data = data };
    }

    /// <summary>One tensor-level mutation: shape, rank, dtype, name, removal or duplication.</summary>
    public string MutateTensors(Random r)
    {
        if (Tensors.Count == 0) return "no tensors";
        int i = r.Next(Tensors.Count);
        var t = Tensors[i];
        var s = t.Shape;
        switch (r.Next(10))
        {
            case 0: Tensors[i] = Reshaped(t, []); return $"'{t.Name}' made 0-d";
            case 1: Tensors[i] = Reshaped(t, s.Length > 0 ? s[..^1] : [1]); return $"'{t.Name}' lost its last dimension";
            case 2: Tensors[i] = Reshaped(t, [1, .. s]); return $"'{t.Name}' gained a leading 1";
            case 3:
            {
                int zero = r.Next(Math.Max(1, s.Length));
                Tensors[i] = Reshaped(t, s.Length == 0 ? [0] : s.Select((d, k) => k == zero ? 0L : d).ToArray());
                return $"'{t.Name}' got a 0 dimension";
            }
            case 4: Tensors[i] = Reshaped(t, s.Select((d, k) => k == 0 ? d * 2 + 1 : d).ToArray()); return $"'{t.Name}' grew its first dimension";
            case 5: Tensors[i] = Reshaped(t, s.Reverse().ToArray()); return $"'{t.Name}' dimensions reversed";
            case 6: { var dt = DTypes[r.Next(DTypes.Count)]; Tensors[i] = Reshaped(t, s, dt); return $"'{t.Name}' stored as {dt}"; }
            case 7: Tensors.RemoveAt(i); return $"'{t.Name}' removed";
            case 8:
            {
                var digits = t.Name.Select((c, k) => (c, k)).Where(x => char.IsAsciiDigit(x.c)).ToList();
                int at = digits.Count == 0 ? -1 : digits[r.Next(digits.Count)].k;
                var name = at < 0 ? t.Name + "x" : t.Name[..at] + r.Next(12) + t.Name[(at + 1)..];
                if (Tensors.Any(o => o.Name == name)) return "rename collided";
                Tensors[i] = t with { Name = name };
                return $"'{t.Name}' renamed '{name}'";
            }
            default:
                var copy = t with { Name = t.Name.Replace("weight", "weight_copy") + (t.Name.Contains("weight") ? "" : ".extra") };
                if (Tensors.Any(o => o.Name == copy.Name)) return "duplicate collided";
                Tensors.Add(copy);
                return $"'{t.Name}' duplicated as '{copy.Name}'";
        }
    }
}
