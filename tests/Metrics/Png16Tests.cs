using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Tests.Metrics;

public sealed class Png16Tests
{
    /// <summary>A minimal 16-bit PNG encoder (colour type 2 RGB or 0 gray, filter 0), independent of the code under test.</summary>
    private static byte[] Png16(int w, int h, ushort[] samples, int channels)
    {
        using var ms = new MemoryStream();
        ms.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        void Chunk(string type, byte[] data)
        {
            var head = new byte[8];
            BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
            Encoding.ASCII.GetBytes(type, 0, 4, head, 4);
            ms.Write(head); ms.Write(data);
            var crc = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.Append(Crc32.Compute(head.AsSpan(4)), data));
            ms.Write(crc);
        }
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 16; ihdr[9] = (byte)(channels == 3 ? 2 : 0);
        Chunk("IHDR", ihdr);
        var raw = new byte[h * (1 + w * channels * 2)];
        for (int y = 0, o = 0, i = 0; y < h; y++)
        {
            raw[o++] = 0;
            for (int x = 0; x < w * channels; x++, i++) { BinaryPrimitives.WriteUInt16BigEndian(raw.AsSpan(o), samples[i]); o += 2; }
        }
        using (var z = new MemoryStream())
        {
            using (var zs = new ZLibStream(z, CompressionLevel.Fastest, true)) zs.Write(raw);
            Chunk("IDAT", z.ToArray());
        }
        Chunk("IEND", []);
        return ms.ToArray();
    }

    [Fact]
    public void SixteenBitRgbKeepsTheHighByteLikePillow()
    {
        int w = 64, h = 32;
        var rng = new Random(7);
        var samples = new ushort[w * h * 3];
        for (int i = 0; i < samples.Length; i++) samples[i] = (ushort)rng.Next(65536);
        samples[0] = 0x80FF; samples[1] = 0x7F80; samples[2] = 0xFFFF; // >> 8 and round(v / 257) differ on these
        var img = ImageLoader.Decode(Png16(w, h, samples, 3), "rgb16.png");
        var expected = samples.Select(v => (byte)(v >> 8)).ToArray();
        Assert.Equal(expected, img.Pixels);
    }
}
