using System.Buffers.Binary;

namespace DiffusionPeft.Core.Imaging;

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
