using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Metrics;

/// <summary>
/// Embeddings keyed by SHA-256 of the image file bytes, one append-only file per embedder identity
/// (model hash + output + preprocessing). Each record carries a CRC-32 and every batch is flushed to disk,
/// so a crash can at worst leave a torn last record, which the next open detects and cuts off: nothing
/// that was appended before is lost.
/// Record: key[32] | dim u32 | dim × float32 | crc32 u32 (over key, dim and values), little-endian.
/// </summary>
public sealed class EmbeddingCache : IDisposable
{
    private static readonly byte[] Magic = "DPEFT-EMB1\n"u8.ToArray();
    private readonly Dictionary<string, float[]> _entries = new(StringComparer.Ordinal);
    private readonly FileStream? _file;
    private readonly object _lock = new();

    public string? FilePath { get; }
    public string Identity { get; }
    public int Count { get { lock (_lock) return _entries.Count; } }
    /// <summary>Bytes cut off a torn last record when the file was opened (0 for a clean file).</summary>
    public long RecoveredBytes { get; }

    private EmbeddingCache(string identity, string? path)
    {
        Identity = identity;
        FilePath = path;
        if (path is null) return;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        try { _file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read); }
        catch (IOException e)
        {
            throw new IOException($"{path}: cannot open the embedding cache for '{identity}' ({e.Message}); is another evaluation using the same cache folder?", e);
        }
        try { RecoveredBytes = Load(); }
        catch { _file.Dispose(); throw; }
    }

    /// <summary>A cache in <paramref name="directory"/> for <paramref name="identity"/>, or memory-only when directory is null.</summary>
    public static EmbeddingCache Open(string? directory, string identity)
    {
        if (directory is null) return new EmbeddingCache(identity, null);
        var name = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..24];
        return new EmbeddingCache(identity, Path.Combine(directory, $"{name}.embcache"));
    }

    public static string KeyOf(ReadOnlySpan<byte> fileBytes) => Convert.ToHexStringLower(SHA256.HashData(fileBytes));

    public bool TryGet(string key, out float[] embedding)
    {
        lock (_lock) return _entries.TryGetValue(key, out embedding!);
    }

    /// <summary>Adds a batch and makes it durable (one write, flushed to disk) before returning.</summary>
    public void Add(IReadOnlyList<(string Key, float[] Embedding)> batch)
    {
        if (batch.Count == 0) return;
        lock (_lock)
        {
            if (_file is not null)
            {
                using var ms = new MemoryStream();
                foreach (var (key, emb) in batch) WriteRecord(ms, key, emb);
                _file.Seek(0, SeekOrigin.End);
                ms.Position = 0;
                ms.CopyTo(_file);
                _file.Flush(flushToDisk: true);
            }
            foreach (var (key, emb) in batch) _entries[key] = emb;
        }
    }

    private static void WriteRecord(Stream s, string key, float[] emb)
    {
        var rec = new byte[32 + 4 + 4 * emb.Length + 4];
        byte[] keyBytes;
        try { keyBytes = Convert.FromHexString(key); } catch (FormatException) { keyBytes = []; }
        if (keyBytes.Length != 32) throw new ArgumentException($"cache key must be a SHA-256 hex string, got '{key}'");
        keyBytes.CopyTo(rec, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(rec.AsSpan(32), (uint)emb.Length);
        for (int i = 0; i < emb.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(rec.AsSpan(36 + 4 * i), emb[i]);
        BinaryPrimitives.WriteUInt32LittleEndian(rec.AsSpan(rec.Length - 4), Crc32.Compute(rec.AsSpan(0, rec.Length - 4)));
        s.Write(rec);
    }

    private long Load()
    {
        var f = _file!;
        var header = Header();
        if (f.Length == 0)
        {
            f.Write(header);
            f.Flush(flushToDisk: true);
            return 0;
        }
        var bytes = new byte[f.Length];
        f.Position = 0;
        f.ReadExactly(bytes);
        if (bytes.Length < header.Length || !bytes.AsSpan(0, header.Length).SequenceEqual(header))
            throw new InvalidDataException($"{FilePath}: not an embedding cache for '{Identity}' (wrong header); delete it to rebuild");
        long pos = header.Length;
        while (true)
        {
            if (bytes.Length - pos < 40) break;
            uint dim = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((int)pos + 32));
            long len = 32 + 4 + 4L * dim + 4;
            if (dim == 0 || dim > 1 << 20 || bytes.Length - pos < len) break;
            var rec = bytes.AsSpan((int)pos, (int)len);
            if (Crc32.Compute(rec[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(rec[^4..])) break;
            var emb = new float[dim];
            for (int i = 0; i < dim; i++) emb[i] = BinaryPrimitives.ReadSingleLittleEndian(rec.Slice(36 + 4 * i));
            _entries[Convert.ToHexStringLower(rec[..32])] = emb;
            pos += len;
        }
        long torn = bytes.Length - pos;
        if (torn > 0)
        {
            // A crash during an append: drop the incomplete tail so new records follow the last good one.
            f.SetLength(pos);
            f.Flush(flushToDisk: true);
        }
        return torn;
    }

    private byte[] Header()
    {
        var id = Encoding.UTF8.GetBytes(Identity);
        var h = new byte[Magic.Length + 4 + id.Length];
        Magic.CopyTo(h, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(Magic.Length), (uint)id.Length);
        id.CopyTo(h, Magic.Length + 4);
        return h;
    }

    public void Dispose() => _file?.Dispose();
}
