using System.Text;
using System.Text.Json;
using TorchSharp;
using DiffusionPeft.IO;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.IO;

/// <summary>Writes .safetensors files atomically: a temporary file beside the target, then a rename.</summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var items = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, _) in items)
        {
            if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor");
            if (!names.Add(name)) throw new ArgumentException($"duplicate tensor name '{name}'");
        }

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
            foreach (var (name, t) in items)
            {
                var dtype = SafetensorsDTypes.FromScalarType(t.dtype);
                long bytes = t.numel() * dtype.ElementSize();
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.ToString());
                json.WriteStartArray("shape");
                foreach (var d in t.shape) json.WriteNumberValue(d);
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

        AtomicFile.Write(path, stream =>
        {
            stream.Write(BitConverter.GetBytes((ulong)buffer.Length));
            buffer.Position = 0;
            buffer.CopyTo(stream);
            foreach (var (_, t) in items)
            {
                if (t.numel() == 0) continue;
                using var scope = torch.NewDisposeScope();
                var cpu = t.detach().cpu().contiguous().view(-1);
                long elem = SafetensorsDTypes.FromScalarType(t.dtype).ElementSize();
                long chunk = Math.Max(1, (64L << 20) / elem);
                for (long s = 0; s < cpu.numel(); s += chunk)
                    stream.Write(cpu.narrow(0, s, Math.Min(chunk, cpu.numel() - s)).bytes);
            }
        });
    }

    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, (IEnumerable<KeyValuePair<string, Tensor>>)tensors, metadata);
}
