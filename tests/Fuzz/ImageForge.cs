using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>Hand-made hostile images: PNG IHDR and JPEG SOF sizes rewritten, PNG chunks added (zTXt/iTXt bombs, eXIf).</summary>
public static class ImageForge
{
    private static readonly Dictionary<int, byte[]> Bombs = [];

    /// <summary>A PNG declaring <paramref name="width"/> x <paramref name="height"/> (IHDR rewritten, CRC recomputed).</summary>
    public static byte[] PngWithSize(byte[] png, uint width, uint height)
    {
        var b = (byte[])png.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), width);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(29), Crc32.Compute(b.AsSpan(12, 17)));
        return b;
    }

    /// <summary>A JPEG whose first frame header (SOFn) declares <paramref name="width"/> x <paramref name="height"/>, or null if it has none.</summary>
    public static byte[]? JpegWithSize(byte[] jpeg, ushort width, ushort height)
    {
        for (int i = 2; i + 9 < jpeg.Length;)
        {
            if (jpeg[i] != 0xFF) return null;
            byte marker = jpeg[i + 1];
            int len = BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(i + 2));
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                var b = (byte[])jpeg.Clone();
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(i + 5), height);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(i + 7), width);
                return b;
            }
            if (marker == 0xDA) return null;
            i += 2 + len;
        }
        return null;
    }

    /// <summary>The PNG with one more chunk just before IEND (CRC correct).</summary>
    public static byte[] PngWithChunk(byte[] png, string type, byte[] data)
    {
        int iend = png.Length - 12;
        using var ms = new MemoryStream();
        ms.Write(png, 0, iend);
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        Encoding.ASCII.GetBytes(type, head[4..]);
        ms.Write(head);
        ms.Write(data);
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.Append(Crc32.Compute(head[4..]), data));
        ms.Write(crc);
        ms.Write(png, iend, 12);
        return ms.ToArray();
    }

    /// <summary>A zTXt (or compressed iTXt) chunk whose text inflates to <paramref name="inflated"/> bytes.</summary>
    public static byte[] TextBomb(bool international, int inflated, string keyword = "parameters")
    {
        var z = ZlibOfZeros(inflated);
        var head = Encoding.Latin1.GetBytes(keyword);
        return international
            ? [.. head, 0, 1, 0, 0, 0, .. z]   // keyword, compressed flag, method, empty language tag and translated keyword
            : [.. head, 0, 0, .. z];
    }

    private static byte[] ZlibOfZeros(int n)
    {
        lock (Bombs)
        {
            if (Bombs.TryGetValue(n, out var cached)) return cached;
            using var ms = new MemoryStream();
            using (var z = new ZLibStream(ms, CompressionLevel.SmallestSize, leaveOpen: true))
            {
                var chunk = new byte[1 << 16];
                for (int left = n; left > 0; left -= chunk.Length) z.Write(chunk, 0, Math.Min(chunk.Length, left));
            }
            return Bombs[n] = ms.ToArray();
        }
    }
}
