using System.Buffers.Binary;
using System.Text;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Core.Imaging;

/// <summary>The chunks of a PNG file up to IEND, each CRC-checked: type and where its data lies in the file.</summary>
public static class PngChunks
{
    public readonly record struct Chunk(string Type, int Offset, int Length);

    private static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];

    public static bool IsPng(ReadOnlySpan<byte> bytes) => bytes.Length >= 8 && bytes[..8].SequenceEqual(Signature);

    /// <param name="untilImageData">Stop before the first IDAT (metadata that must precede the pixels, e.g. eXIf).</param>
    public static List<Chunk> Read(byte[] png, string name, bool untilImageData = false)
    {
        if (!IsPng(png)) throw new ImageDecodeException(name, "not a PNG file (bad signature)");
        var chunks = new List<Chunk>();
        int pos = 8;
        while (true)
        {
            if (png.Length - pos < 12) throw new ImageDecodeException(name, $"truncated PNG (chunk header at byte {pos})");
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = Encoding.ASCII.GetString(png, pos + 4, 4);
            if (untilImageData && type == "IDAT") return chunks;
            if (len < 0 || png.Length - pos - 12 < len) throw new ImageDecodeException(name, $"truncated PNG ({type} chunk at byte {pos} runs past the end)");
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + len));
            if (Crc32.Compute(png.AsSpan(pos + 4, len + 4)) != crc) throw new ImageDecodeException(name, $"corrupt PNG ({type} chunk at byte {pos} fails its CRC)");
            chunks.Add(new Chunk(type, pos + 8, len));
            if (type == "IEND") return chunks;
            pos += 12 + len;
        }
    }
}
