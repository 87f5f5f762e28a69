using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using DiffusionPeft.IO;

namespace DiffusionPeft.Imaging;

/// <summary>Reads the text chunks (tEXt, zTXt, iTXt) of a PNG, in file order.</summary>
public static class PngText
{
    public static IReadOnlyList<(string Key, string Value)> Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ImageDecodeException(path, $"cannot read the file ({e.Message})", e); }
        return Read(bytes, path);
    }

    /// <summary>The value of the first chunk named <paramref name="key"/>, or null.</summary>
    public static string? Get(IReadOnlyList<(string Key, string Value)> chunks, string key) =>
        chunks.FirstOrDefault(c => c.Key == key).Value;

    public static IReadOnlyList<(string Key, string Value)> Read(byte[] png, string name)
    {
        ReadOnlySpan<byte> sig = [137, 80, 78, 71, 13, 10, 26, 10];
        if (png.Length < 8 || !png.AsSpan(0, 8).SequenceEqual(sig)) throw new ImageDecodeException(name, "not a PNG file (bad signature)");
        var result = new List<(string, string)>();
        int pos = 8;
        while (true)
        {
            if (png.Length - pos < 12) throw new ImageDecodeException(name, $"truncated PNG (chunk header at byte {pos})");
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = Encoding.ASCII.GetString(png, pos + 4, 4);
            if (len < 0 || png.Length - pos - 12 < len) throw new ImageDecodeException(name, $"truncated PNG ({type} chunk at byte {pos} runs past the end)");
            var data = png.AsSpan(pos + 8, len);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + len));
            if (Crc32.Compute(png.AsSpan(pos + 4, len + 4)) != crc) throw new ImageDecodeException(name, $"corrupt PNG ({type} chunk at byte {pos} fails its CRC)");
            switch (type)
            {
                case "tEXt": result.Add(ParseText(data, name)); break;
                case "zTXt": result.Add(ParseCompressedText(data, name)); break;
                case "iTXt": result.Add(ParseInternationalText(data, name)); break;
                case "IEND": return result;
            }
            pos += 12 + len;
        }
    }

    private static (string, string) ParseText(ReadOnlySpan<byte> d, string name)
    {
        int z = d.IndexOf((byte)0);
        if (z <= 0) throw new ImageDecodeException(name, "malformed tEXt chunk (no keyword)");
        return (Encoding.Latin1.GetString(d[..z]), Encoding.Latin1.GetString(d[(z + 1)..]));
    }

    private static (string, string) ParseCompressedText(ReadOnlySpan<byte> d, string name)
    {
        int z = d.IndexOf((byte)0);
        if (z <= 0 || d.Length < z + 2) throw new ImageDecodeException(name, "malformed zTXt chunk");
        return (Encoding.Latin1.GetString(d[..z]), Encoding.Latin1.GetString(Inflate(d[(z + 2)..], name)));
    }

    private static (string, string) ParseInternationalText(ReadOnlySpan<byte> d, string name)
    {
        int z = d.IndexOf((byte)0);
        if (z <= 0 || d.Length < z + 3) throw new ImageDecodeException(name, "malformed iTXt chunk");
        string key = Encoding.Latin1.GetString(d[..z]);
        bool compressed = d[z + 1] != 0;
        var rest = d[(z + 3)..];
        int lang = rest.IndexOf((byte)0);
        if (lang < 0) throw new ImageDecodeException(name, "malformed iTXt chunk (language tag)");
        rest = rest[(lang + 1)..];
        int trans = rest.IndexOf((byte)0);
        if (trans < 0) throw new ImageDecodeException(name, "malformed iTXt chunk (translated keyword)");
        rest = rest[(trans + 1)..];
        return (key, Encoding.UTF8.GetString(compressed ? Inflate(rest, name) : rest.ToArray()));
    }

    private static byte[] Inflate(ReadOnlySpan<byte> zlib, string name)
    {
        try
        {
            using var z = new ZLibStream(new MemoryStream(zlib.ToArray()), CompressionMode.Decompress);
            using var o = new MemoryStream();
            z.CopyTo(o);
            return o.ToArray();
        }
        catch (InvalidDataException e) { throw new ImageDecodeException(name, "corrupt compressed text chunk", e); }
    }
}
