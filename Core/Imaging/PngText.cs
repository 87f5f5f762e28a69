using System.IO.Compression;
using System.Text;

namespace DiffusionPeft.Core.Imaging;

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
        var result = new List<(string, string)>();
        foreach (var c in PngChunks.Read(png, name))
        {
            var data = png.AsSpan(c.Offset, c.Length);
            switch (c.Type)
            {
                case "tEXt": result.Add(ParseText(data, name)); break;
                case "zTXt": result.Add(ParseCompressedText(data, name)); break;
                case "iTXt": result.Add(ParseInternationalText(data, name)); break;
            }
        }
        return result;
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
