using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Core.Imaging;

/// <summary>
/// Writes 8-bit RGB PNGs with text chunks, atomically. A value that Latin-1 can hold goes into a tEXt chunk
/// (AUTOMATIC1111 stores generation settings in one named "parameters"), anything else into an uncompressed
/// UTF-8 iTXt chunk, as Pillow's PngInfo.add_text does.
/// </summary>
public static class PngWriter
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];
    private static readonly Encoding Latin1 = Encoding.Latin1;

    public static void Write(string path, RgbImage image, IReadOnlyList<(string Key, string Value)>? textChunks = null,
        CompressionLevel compression = CompressionLevel.Optimal) =>
        AtomicFile.Write(path, s => Write(s, image, textChunks, compression));

    public static byte[] Encode(RgbImage image, IReadOnlyList<(string Key, string Value)>? textChunks = null,
        CompressionLevel compression = CompressionLevel.Optimal)
    {
        using var ms = new MemoryStream();
        Write(ms, image, textChunks, compression);
        return ms.ToArray();
    }

    public static void Write(Stream s, RgbImage image, IReadOnlyList<(string Key, string Value)>? textChunks, CompressionLevel compression)
    {
        s.Write(Signature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, image.Width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), image.Height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // colour type RGB; compression, filter, interlace = 0
        WriteChunk(s, "IHDR", ihdr);
        foreach (var (key, value) in textChunks ?? [])
            WriteChunk(s, IsLatin1(value) ? "tEXt" : "iTXt", TextPayload(key, value));
        WriteChunk(s, "IDAT", Compress(image, compression));
        WriteChunk(s, "IEND", []);
    }

    private static bool IsLatin1(string v) => v.All(ch => ch <= 0xFF);

    private static byte[] TextPayload(string key, string value)
    {
        if (key.Length is < 1 or > 79 || !IsLatin1(key) || key.Contains('\0') || key != key.Trim())
            throw new ArgumentException($"PNG text key '{key}' must be 1-79 Latin-1 characters without leading/trailing spaces");
        using var ms = new MemoryStream();
        ms.Write(Latin1.GetBytes(key));
        ms.WriteByte(0);
        if (IsLatin1(value)) ms.Write(Latin1.GetBytes(value));
        else
        {
            ms.Write([0, 0]); // not compressed, method 0
            ms.WriteByte(0);  // empty language tag
            ms.WriteByte(0);  // empty translated keyword
            ms.Write(Encoding.UTF8.GetBytes(value));
        }
        return ms.ToArray();
    }

    private static void WriteChunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        Encoding.ASCII.GetBytes(type, head[4..]);
        s.Write(head);
        s.Write(data);
        uint crc = Crc32.Append(Crc32.Compute(head[4..]), data);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc);
        s.Write(tail);
    }

    /// <summary>zlib stream of filtered scanlines; per row the filter with the smallest sum of |signed bytes| (libpng's heuristic).</summary>
    private static byte[] Compress(RgbImage image, CompressionLevel level)
    {
        int stride = image.Stride;
        var filtered = new byte[image.Height * (stride + 1)];
        Parallel.For(0, image.Height, y =>
        {
            var cur = image.Pixels.AsSpan(y * stride, stride);
            var prev = y > 0 ? image.Pixels.AsSpan((y - 1) * stride, stride) : Span<byte>.Empty;
            Span<byte> best = filtered.AsSpan(y * (stride + 1) + 1, stride);
            Span<byte> trial = stride <= 16384 ? stackalloc byte[stride] : new byte[stride];
            long bestCost = long.MaxValue;
            byte bestType = 0;
            for (byte f = 0; f < 5; f++)
            {
                Filter(f, cur, prev, trial);
                long cost = 0;
                foreach (var b in trial) cost += b < 128 ? b : 256 - b;
                if (cost < bestCost) { bestCost = cost; bestType = f; trial.CopyTo(best); }
            }
            filtered[y * (stride + 1)] = bestType;
        });
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, level, leaveOpen: true)) z.Write(filtered);
        return ms.ToArray();
    }

    private static void Filter(byte type, ReadOnlySpan<byte> cur, ReadOnlySpan<byte> prev, Span<byte> dst)
    {
        const int bpp = 3;
        for (int i = 0; i < cur.Length; i++)
        {
            int a = i >= bpp ? cur[i - bpp] : 0;
            int b = prev.IsEmpty ? 0 : prev[i];
            int c = i >= bpp && !prev.IsEmpty ? prev[i - bpp] : 0;
            int pred = type switch
            {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) >> 1,
                _ => Paeth(a, b, c),
            };
            dst[i] = (byte)(cur[i] - pred);
        }
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
}
