using System.Buffers.Binary;
using System.Text;
using DiffusionPeft.IO;

namespace DiffusionPeft.Imaging;

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

/// <summary>Reads the orientation tag (0x0112) from a TIFF-structured EXIF block (as stored in PNG eXIf chunks).</summary>
public static class ExifReader
{
    /// <summary>1..8, or 1 when the block has no valid orientation.</summary>
    public static int Orientation(ReadOnlySpan<byte> block) => Orientation(block.ToArray());

    private static int Orientation(byte[] block)
    {
        var tiff = block.AsSpan().StartsWith("Exif\0\0"u8) ? block[6..] : block;
        if (tiff.Length < 8) return 1;
        bool little = tiff[0] == (byte)'I' && tiff[1] == (byte)'I';
        if (!little && !(tiff[0] == (byte)'M' && tiff[1] == (byte)'M')) return 1;
        ushort U16(int at) => little ? BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(at)) : BinaryPrimitives.ReadUInt16BigEndian(tiff.AsSpan(at));
        uint U32(int at) => little ? BinaryPrimitives.ReadUInt32LittleEndian(tiff.AsSpan(at)) : BinaryPrimitives.ReadUInt32BigEndian(tiff.AsSpan(at));
        if (U16(2) != 42) return 1;
        uint ifd = U32(4);
        if (ifd > tiff.Length - 2) return 1;
        int count = U16((int)ifd);
        for (int i = 0; i < count; i++)
        {
            int e = (int)ifd + 2 + 12 * i;
            if (e + 12 > tiff.Length) return 1;
            if (U16(e) == 0x0112 && U16(e + 2) == 3) // SHORT
            {
                int v = U16(e + 8);
                return v is >= 1 and <= 8 ? v : 1;
            }
        }
        return 1;
    }
}
