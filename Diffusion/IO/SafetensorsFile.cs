using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.IO;

/// <summary>One tensor's header entry: dtype, shape and byte span relative to the start of the data section.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A validated, read-only view of a .safetensors file. Opening reads only the header; tensors are read
/// on request straight from the file into TorchSharp storage, so a multi-GB checkpoint never has a
/// second copy in managed memory. Every structural fault is an <see cref="InvalidSafetensorsException"/>
/// naming the file, the tensor and the fault.
/// </summary>
public sealed class SafetensorsFile : ITensorSource, IDisposable
{
    /// <summary>Largest header accepted (the reference implementation uses the same 100 MB bound).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, SafetensorsEntry> _entries;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries => _entries;
    public IEnumerable<string> Names => _entries.Keys;
    public long DataOffset { get; }
    public long FileLength { get; }

    private SafetensorsFile(string path, SafeFileHandle handle, long fileLength, long dataOffset,
        Dictionary<string, SafetensorsEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path; _handle = handle; FileLength = fileLength; DataOffset = dataOffset;
        _entries = entries; Metadata = metadata;
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: safetensors file not found.", path);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            long length = RandomAccess.GetLength(handle);
            if (length < 8) throw Fault(path, null, $"file is {length} bytes, shorter than the 8-byte header length");
            Span<byte> lenBytes = stackalloc byte[8];
            ReadExactly(handle, lenBytes, 0, path);
            ulong n = BitConverter.ToUInt64(lenBytes);
            if (n > MaxHeaderBytes) throw Fault(path, null, $"header length {n} is absurdly large (limit {MaxHeaderBytes} bytes)");
            if ((long)n > length - 8) throw Fault(path, null, $"header length {n} runs beyond the end of the {length}-byte file (truncated?)");
            if (n < 2) throw Fault(path, null, $"header length {n} is too short for a JSON object");
            var header = new byte[n];
            ReadExactly(handle, header, 8, path);
            long dataOffset = 8 + (long)n;
            var (entries, metadata) = ParseHeader(path, header, length - dataOffset);
            return new SafetensorsFile(path, handle, length, dataOffset, entries, metadata);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Reads only the header and returns the metadata and entries; the file is closed afterwards.</summary>
    public static (IReadOnlyDictionary<string, SafetensorsEntry> Entries, IReadOnlyDictionary<string, string> Metadata) ReadHeader(string path)
    {
        using var f = Open(path);
        return (f._entries, f.Metadata);
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    string ITensorSource.Description => Path;
    IReadOnlyCollection<string> ITensorSource.Keys => _entries.Keys;
    long[] ITensorSource.ShapeOf(string key) => Entry(key).Shape;
    Tensor ITensorSource.Read(string key, ScalarType? dtype) => Read(key, dtype);

    public SafetensorsEntry Entry(string name) =>
        _entries.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'.");

    /// <summary>Reads a tensor into a new CPU tensor of the stored dtype, then converts to the requested dtype and device.</summary>
    public Tensor Read(string name, ScalarType? dtype = null, Device? device = null)
    {
        var e = Entry(name);
        Tensor t = empty(e.Shape, e.DType.ToScalarType());
        try
        {
            ReadInto(e, t);
            if (dtype is { } dt && dt != t.dtype) { var c = t.to_type(dt); t.Dispose(); t = c; }
            if (device is not null && device.type != DeviceType.CPU) { var c = t.to(device); t.Dispose(); t = c; }
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>Copies the tensor's bytes into <paramref name="destination"/> (contiguous CPU, same dtype and element count).</summary>
    public void ReadInto(SafetensorsEntry e, Tensor destination)
    {
        if (destination.device_type != DeviceType.CPU || !destination.is_contiguous())
            throw new ArgumentException("destination must be a contiguous CPU tensor");
        if (destination.dtype != e.DType.ToScalarType() || destination.numel() != e.NumElements)
            throw new ArgumentException($"{Path}: tensor '{e.Name}' is {e.DType} x {e.NumElements}, destination is {destination.dtype} x {destination.numel()}");
        if (e.ByteLength == 0) return;
        // Chunked through flat views: Span<byte> is limited to 2 GB and chunks keep each read bounded.
        using var flat = destination.view(-1);
        long elemSize = e.DType.ElementSize();
        long chunkElems = Math.Max(1, (256L << 20) / elemSize);
        for (long start = 0; start < e.NumElements; start += chunkElems)
        {
            long count = Math.Min(chunkElems, e.NumElements - start);
            using var part = flat.narrow(0, start, count);
            ReadExactly(_handle, part.bytes, DataOffset + e.Begin + start * elemSize, Path, e.Name);
        }
    }

    /// <summary>Reads the raw little-endian bytes of a tensor (for TorchSharp-free consumers and small tensors).</summary>
    public byte[] ReadBytes(string name)
    {
        var e = Entry(name);
        var buffer = new byte[e.ByteLength];
        ReadExactly(_handle, buffer, DataOffset + e.Begin, Path, name);
        return buffer;
    }

    public void Dispose() => _handle.Dispose();

    private static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset, string path, string? tensor = null)
    {
        while (buffer.Length > 0)
        {
            int n = RandomAccess.Read(handle, buffer, offset);
            if (n <= 0) throw Fault(path, tensor, $"unexpected end of file at byte {offset}");
            buffer = buffer[n..];
            offset += n;
        }
    }

    private static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8, AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException ex)
        {
            throw Fault(path, null, $"header is not valid JSON ({ex.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Fault(path, null, "header is not a JSON object");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                string name = prop.Name;
                if (name == "__metadata__")
                {
                    if (sawMetadata) throw Fault(path, null, "duplicate __metadata__ entry");
                    sawMetadata = true;
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Fault(path, null, "__metadata__ is not an object of strings");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Fault(path, null, $"__metadata__ value '{m.Name}' is not a string");
                        if (!metadata.TryAdd(m.Name, m.Value.GetString()!)) throw Fault(path, null, $"duplicate __metadata__ key '{m.Name}'");
                    }
                    continue;
                }
                if (entries.ContainsKey(name)) throw Fault(path, name, "duplicate tensor name");
                entries[name] = ParseEntry(path, name, prop.Value, dataLength);
            }
            CheckLayout(path, entries.Values, dataLength);
            return (entries, metadata);
        }
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement v, long dataLength)
    {
        if (v.ValueKind != JsonValueKind.Object) throw Fault(path, name, "entry is not an object");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw Fault(path, name, "missing or non-string dtype");
        if (!SafetensorsDTypes.TryParse(dt.GetString()!, out var dtype)) throw Fault(path, name, $"unknown dtype '{dt.GetString()}'");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw Fault(path, name, "missing or non-array shape");
        if (sh.GetArrayLength() > 16) throw Fault(path, name, $"shape has {sh.GetArrayLength()} dimensions (limit 16)");
        var shape = new long[sh.GetArrayLength()];
        long elements = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0) throw Fault(path, name, $"shape entry {d} is not a non-negative integer");
            shape[i++] = dim;
            // Any product beyond the data section is already wrong; stopping there also prevents overflow.
            if (dim != 0 && elements > dataLength / dim + 1) elements = long.MaxValue; else elements *= dim;
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Fault(path, name, "data_offsets is not a [begin, end] pair");
        var offs = off.EnumerateArray().ToArray();
        if (!offs[0].TryGetInt64(out long begin) || !offs[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Fault(path, name, $"data_offsets [{offs[0]}, {offs[1]}] are not 0 <= begin <= end");
        if (end > dataLength) throw Fault(path, name, $"data_offsets [{begin}, {end}] run beyond the {dataLength}-byte data section");
        long expected = elements == long.MaxValue ? long.MaxValue : elements * dtype.ElementSize();
        if (expected != end - begin)
            throw Fault(path, name, $"shape [{string.Join(", ", shape)}] x {dtype} needs {(expected == long.MaxValue ? "more" : expected.ToString())} bytes but data_offsets span {end - begin}");
        foreach (var p in v.EnumerateObject())
            if (p.Name is not ("dtype" or "shape" or "data_offsets")) throw Fault(path, name, $"unexpected field '{p.Name}'");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    /// <summary>Tensors must tile the data section exactly: no overlap, no gap, nothing after the last one.</summary>
    private static void CheckLayout(string path, IEnumerable<SafetensorsEntry> entries, long dataLength)
    {
        long cursor = 0;
        SafetensorsEntry? previous = null;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < cursor) throw Fault(path, e.Name, $"data_offsets [{e.Begin}, {e.End}] overlap tensor '{previous!.Name}' [{previous.Begin}, {previous.End}]");
            if (e.Begin > cursor) throw Fault(path, e.Name, $"gap of {e.Begin - cursor} bytes before data_offsets [{e.Begin}, {e.End}]");
            cursor = e.End;
            previous = e;
        }
        if (cursor != dataLength) throw Fault(path, null, $"data section is {dataLength} bytes but the tensors cover {cursor} (trailing or missing bytes)");
    }

    private static InvalidSafetensorsException Fault(string path, string? tensor, string fault) => new(path, tensor, fault);
}

/// <summary>A structurally invalid .safetensors file.</summary>
public sealed class InvalidSafetensorsException(string path, string? tensor, string fault)
    : IOException(tensor is null ? $"{path}: invalid safetensors file: {fault}." : $"{path}: invalid safetensors file: tensor '{tensor}': {fault}.")
{
    public string FilePath { get; } = path;
    public string? Tensor { get; } = tensor;
    public string Fault { get; } = fault;
}
