using System.Buffers.Binary;
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
public sealed class SafetensorsFile : IOwnedTensorSource
{
    /// <summary>Largest header accepted (the reference implementation uses the same 100 MB bound).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Most dimensions a tensor may have (PyTorch's own limit is 64).</summary>
    public const int MaxRank = 64;

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
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
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
        Tensor t = empty(e.Shape, e.DType.ToScalarType(), CPU);
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
            try
            {
                return ParseRoot(path, doc.RootElement, dataLength);
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException or DecoderFallbackException)
            {
                // Escaped strings that do not decode (e.g. a lone "\ud800" in a name) surface only when read.
                throw Fault(path, null, $"header contains a malformed string ({ex.Message})");
            }
        }
    }

    private static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseRoot(string path, JsonElement root, long dataLength)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Fault(path, null, $"header is not a JSON object but {Describe(root.ValueKind)}");
        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        bool sawMetadata = false;
        foreach (var prop in root.EnumerateObject())
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
            // JSON allows a repeated key and most parsers keep the last one silently; here it is an error.
            if (entries.ContainsKey(name)) throw Fault(path, name, "duplicate tensor name (the header repeats this key)");
            entries[name] = ParseEntry(path, name, prop.Value, dataLength);
        }
        CheckLayout(path, entries.Values, dataLength);
        return (entries, metadata);
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement v, long dataLength)
    {
        if (v.ValueKind != JsonValueKind.Object) throw Fault(path, name, $"entry is not an object but {Describe(v.ValueKind)}");
        JsonElement? dt = null, sh = null, off = null;
        foreach (var p in v.EnumerateObject())
        {
            switch (p.Name)
            {
                case "dtype": if (dt is not null) throw Fault(path, name, "duplicate field 'dtype'"); dt = p.Value; break;
                case "shape": if (sh is not null) throw Fault(path, name, "duplicate field 'shape'"); sh = p.Value; break;
                case "data_offsets": if (off is not null) throw Fault(path, name, "duplicate field 'data_offsets'"); off = p.Value; break;
                default: throw Fault(path, name, $"unexpected field '{p.Name}'");
            }
        }
        if (dt is not { ValueKind: JsonValueKind.String } dtv) throw Fault(path, name, "missing or non-string dtype");
        if (!SafetensorsDTypes.TryParse(dtv.GetString()!, out var dtype)) throw Fault(path, name, $"unknown dtype '{dtv.GetString()}'");
        if (sh is not { ValueKind: JsonValueKind.Array } shv) throw Fault(path, name, "missing or non-array shape");
        int rank = shv.GetArrayLength();
        if (rank > MaxRank) throw Fault(path, name, $"shape has {rank} dimensions (limit {MaxRank})");
        var shape = new long[rank];
        long elements = 1;
        bool overflow = false;
        int i = 0;
        foreach (var d in shv.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw Fault(path, name, $"shape dimension {i} is {d.GetRawText()}, not a non-negative integer");
            shape[i++] = dim;
            // Checked like upstream (try_fold with checked_mul): an overflowing product is an error even if a later dimension is 0.
            try { elements = checked(elements * dim); } catch (OverflowException) { overflow = true; }
        }
        long bytes = 0;
        if (!overflow) { try { bytes = checked(elements * dtype.ElementSize()); } catch (OverflowException) { overflow = true; } }
        if (overflow) throw Fault(path, name, $"shape [{string.Join(", ", shape)}] overflows: the element count does not fit in 64 bits");
        if (off is not { ValueKind: JsonValueKind.Array } offv || offv.GetArrayLength() != 2)
            throw Fault(path, name, "data_offsets is not a [begin, end] pair");
        var o0 = offv[0]; var o1 = offv[1];
        if (o0.ValueKind != JsonValueKind.Number || o1.ValueKind != JsonValueKind.Number
            || !o0.TryGetInt64(out long begin) || !o1.TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Fault(path, name, $"data_offsets [{o0.GetRawText()}, {o1.GetRawText()}] are not integers with 0 <= begin <= end");
        if (end > dataLength) throw Fault(path, name, $"data_offsets [{begin}, {end}] are out of bounds: they run beyond the {dataLength}-byte data section");
        if (bytes != end - begin)
            throw Fault(path, name, $"size mismatch: shape [{string.Join(", ", shape)}] x {dtype} needs {bytes} bytes but data_offsets [{begin}, {end}] span {end - begin}");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static string Describe(JsonValueKind k) => k switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => k.ToString(),
    };

    /// <summary>Tensors must tile the data section exactly: no overlap, no gap, nothing after the last one.</summary>
    private static void CheckLayout(string path, IEnumerable<SafetensorsEntry> entries, long dataLength)
    {
        long cursor = 0;
        SafetensorsEntry? previous = null;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < cursor) throw Fault(path, e.Name, $"data_offsets [{e.Begin}, {e.End}] overlap tensor '{previous!.Name}' [{previous.Begin}, {previous.End}]");
            if (e.Begin > cursor) throw Fault(path, e.Name, $"gap of {e.Begin - cursor} unused bytes before data_offsets [{e.Begin}, {e.End}]");
            cursor = e.End;
            previous = e;
        }
        if (cursor != dataLength) throw Fault(path, null, $"data section is {dataLength} bytes but the tensors cover {cursor}: a gap of {dataLength - cursor} trailing bytes");
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
