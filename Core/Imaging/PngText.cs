using System.IO.Compression;
using System.Text;

namespace DiffusionPeft.Core.Imaging;

/// <summary>
/// Reads the text chunks (tEXt, zTXt, iTXt) of a PNG, in file order. Compressed text is inflated only up to
/// <see cref="ImageLimits.MaxTextChunkBytes"/> per chunk and <see cref="ImageLimits.MaxTextBytes"/> per file: a chunk
/// that would inflate further (a decompression bomb) is an <see cref="ImageDecodeException"/>.
/// </summary>
public static class PngText
{
    public static IReadOnlyList<(string Key, string Value)> Read(string path) => Read(path, ImageLimits.Default);

    public static IReadOnlyList<(string Key, string Value)> Read(string path, ImageLimits limits)
    {
        return Read(ImageLoader.ReadFile(path), path, limits);
    }

    /// <summary>The value of the first chunk named <paramref name="key"/>, or null.</summary>
    public static string? Get(IReadOnlyList<(string Key, string Value)> chunks, string key) =>
        chunks.FirstOrDefault(c => c.Key == key).Value;

    public static IReadOnlyList<(string Key, string Value)> Read(byte[] png, string name) => Read(png, name, ImageLimits.Default);

    public static IReadOnlyList<(string Key, string Value)> Read(byte[] png, string name, ImageLimits limits)
    {
        var result = new List<(string, string)>();
        var budget = new InflateBudget(limits);
        foreach (var c in PngChunks.Read(png, name))
        {
            var data = png.AsSpan(c.Offset, c.Length);
            switch (c.Type)
            {
                case "tEXt": result.Add(ParseText(data, name)); break;
                case "zTXt": result.Add(ParseCompressedText(data, name, budget)); break;
                case "iTXt": result.Add(ParseInternationalText(data, name, budget)); break;
            }
        }
        return result;
    }

    /// <summary>How much more text this file may inflate to.</summary>
    private sealed class InflateBudget(ImageLimits limits)
    {
        public ImageLimits Limits { get; } = limits;
        public long Left { get; set; } = limits.MaxTextBytes;
    }

    private static (string, string) ParseText(ReadOnlySpan<byte> d, string name)
    {
        int z = d.IndexOf((byte)0);
        if (z <= 0) throw new ImageDecodeException(name, "malformed tEXt chunk (no keyword)");
        return (Encoding.Latin1.GetString(d[..z]), Encoding.Latin1.GetString(d[(z + 1)..]));
    }

    private static (string, string) ParseCompressedText(ReadOnlySpan<byte> d, string name, InflateBudget budget)
    {
        int z = d.IndexOf((byte)0);
        if (z <= 0 || d.Length < z + 2) throw new ImageDecodeException(name, "malformed zTXt chunk");
        return (Encoding.Latin1.GetString(d[..z]), Encoding.Latin1.GetString(Inflate(d[(z + 2)..], name, budget)));
    }

    private static (string, string) ParseInternationalText(ReadOnlySpan<byte> d, string name, InflateBudget budget)
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
        return (key, Encoding.UTF8.GetString(compressed ? Inflate(rest, name, budget) : rest.ToArray()));
    }

    private static byte[] Inflate(ReadOnlySpan<byte> zlib, string name, InflateBudget budget)
    {
        long cap = Math.Min(budget.Limits.MaxTextChunkBytes, budget.Left);
        try
        {
            using var z = new ZLibStream(new MemoryStream(zlib.ToArray()), CompressionMode.Decompress);
            using var o = new MemoryStream();
            var buffer = new byte[81920];
            int n;
            while ((n = z.Read(buffer, 0, buffer.Length)) > 0)
            {
                if (o.Length + n > cap)
                    throw new ImageDecodeException(name, o.Length + n > budget.Limits.MaxTextChunkBytes
                        ? $"a compressed text chunk inflates to more than {budget.Limits.MaxTextChunkBytes:N0} bytes (a decompression bomb?)"
                        : $"the compressed text chunks inflate to more than {budget.Limits.MaxTextBytes:N0} bytes in all (a decompression bomb?)");
                o.Write(buffer, 0, n);
            }
            budget.Left -= o.Length;
            return o.ToArray();
        }
        catch (InvalidDataException e) { throw new ImageDecodeException(name, "corrupt compressed text chunk", e); }
    }
}
