using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace DiffusionPeft.Core.Imaging;

/// <summary>
/// Decodes PNG / JPEG / WebP (also 16-bit PNG, grayscale, CMYK JPEG, RGBA) to 8-bit RGB the way
/// <c>ImageOps.exif_transpose(Image.open(p)).convert('RGB')</c> does: EXIF orientation applied, alpha
/// dropped without compositing, gray replicated, no colour management.
/// </summary>
public static class ImageLoader
{
    public static readonly IReadOnlySet<string> Extensions =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".webp" };

    public static bool IsImageFile(string path) => Extensions.Contains(Path.GetExtension(path));

    public static RgbImage Load(string path) => Decode(ReadFile(path), path);

    /// <summary>
    /// The file's bytes, as many as its size says (a device such as /dev/zero reads as empty rather than forever), at
    /// most <see cref="ImageLimits.MaxFileBytes"/>; any failure is an <see cref="ImageDecodeException"/>.
    /// </summary>
    public static byte[] ReadFile(string path)
    {
        var limits = ImageLimits.Default;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            long length = fs.Length;
            if (length > limits.MaxFileBytes) throw new ImageDecodeException(path, $"the file is {length:N0} bytes, more than the {limits.MaxFileBytes:N0} an image may have");
            var bytes = new byte[length];
            fs.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is IOException and not ImageDecodeException or UnauthorizedAccessException)
        {
            throw new ImageDecodeException(path, $"cannot read the file ({e.Message})", e);
        }
    }

    /// <summary>Decodes encoded bytes; <paramref name="name"/> only labels errors.</summary>
    public static RgbImage Decode(byte[] bytes, string name) => Decode(bytes, name, ImageLimits.Default);

    /// <summary>
    /// Decodes encoded bytes within <paramref name="limits"/>: the format and the declared size are checked before
    /// Skia allocates or decodes anything, and every failure, whatever its cause, is an <see cref="ImageDecodeException"/>.
    /// </summary>
    public static RgbImage Decode(byte[] bytes, string name, ImageLimits limits)
    {
        if (bytes.Length == 0) throw new ImageDecodeException(name, "the file is empty");
        if (!IsSupportedFormat(bytes)) throw new ImageDecodeException(name, "not an image in a supported format (PNG, JPEG, WebP)");
        if (PngChunks.IsPng(bytes)) CheckPngHeader(bytes, name, limits);
        try
        {
            return DecodeWithSkia(bytes, name, limits);
        }
        catch (Exception e) when (e is not ImageDecodeException)
        {
            throw new ImageDecodeException(name, $"cannot be decoded ({e.GetType().Name}: {e.Message})", e);
        }
    }

    /// <summary>
    /// PNG, JPEG and WebP by their signatures. Skia would also take GIF, BMP, ICO and others, but this reader promises
    /// only these three, and every other decoder is native code a hostile file should not reach.
    /// </summary>
    private static bool IsSupportedFormat(ReadOnlySpan<byte> b) =>
        PngChunks.IsPng(b)
        || (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        || (b.Length >= 12 && b[..4].SequenceEqual("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8));

    /// <summary>
    /// The IHDR's size against the limits, and whether the file's compressed pixel data could possibly hold that many
    /// pixels (deflate expands at most 1032:1): a tiny file declaring a huge image is refused before any allocation.
    /// </summary>
    private static void CheckPngHeader(byte[] png, string name, ImageLimits limits)
    {
        if (png.Length < 33 || !png.AsSpan(12, 4).SequenceEqual("IHDR"u8) || BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(8)) != 13)
            throw new ImageDecodeException(name, "corrupt PNG (the first chunk is not a 13-byte IHDR)");
        long width = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(16)), height = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(20));
        if (limits.CheckSize(width, height) is { } fault) throw new ImageDecodeException(name, fault);
        int bitDepth = png[24];
        int channels = png[25] switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
        if (channels == 0 || bitDepth is not (1 or 2 or 4 or 8 or 16))
            throw new ImageDecodeException(name, $"corrupt PNG (colour type {png[25]} with bit depth {bitDepth})");
        long idat = 0;
        for (long pos = 8; pos + 8 <= png.Length;)
        {
            long len = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan((int)pos));
            var type = png.AsSpan((int)pos + 4, 4);
            if (type.SequenceEqual("IDAT"u8)) idat += Math.Min(len, png.Length - pos - 8);
            if (type.SequenceEqual("IEND"u8)) break;
            pos += 12 + len;
        }
        double minimumRaw = Math.Ceiling((double)width * height * channels * bitDepth / 8);
        if (idat * 1032.0 + 1024 < minimumRaw)
            throw new ImageDecodeException(name, $"truncated or corrupt PNG: {width}x{height} pixels need at least {minimumRaw:N0} bytes of image data, " +
                                                 $"more than its {idat:N0} bytes of compressed data can hold");
    }

    private static unsafe RgbImage DecodeWithSkia(byte[] bytes, string name, ImageLimits limits)
    {
        fixed (byte* p = bytes)
        {
            using var data = SKData.Create((IntPtr)p, bytes.Length)
                ?? throw new ImageDecodeException(name, "Skia could not wrap the file's bytes");
            // The codec owns the stream (Skia deletes it, also when creation fails).
            using var codec = SKCodec.Create(new SKMemoryStream(data), out var createResult);
            if (codec is null)
                throw new ImageDecodeException(name, createResult switch
                {
                    SKCodecResult.IncompleteInput => "truncated or incomplete image data",
                    SKCodecResult.Unimplemented => "not an image in a supported format (PNG, JPEG, WebP)",
                    SKCodecResult.InvalidInput => "corrupt image data",
                    _ => $"cannot be decoded ({createResult})",
                });
            var size = codec.Info;
            // Skia's own SKImageInfo.BytesSize is an int that wraps for large images: a buffer sized from it is too
            // small and the decoder writes past its end. Every size here is checked against the limit first.
            if (limits.CheckSize(size.Width, size.Height) is { } fault) throw new ImageDecodeException(name, fault);
            // No colour space: Skia then converts nothing (PIL applies no ICC profile either). Unpremul keeps
            // the stored colour under transparent pixels, which convert('RGB') uses as it is.
            var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            var rgba = new byte[(long)size.Width * size.Height * 4];
            SKCodecResult result;
            fixed (byte* dst = rgba) result = codec.GetPixels(info, (IntPtr)dst);
            if (result != SKCodecResult.Success)
                throw new ImageDecodeException(name, result switch
                {
                    SKCodecResult.IncompleteInput => "truncated image data (the file ends before the image does)",
                    SKCodecResult.ErrorInInput => "corrupt image data",
                    SKCodecResult.InvalidConversion => $"unsupported pixel format ({codec.EncodedFormat}, {size.ColorType})",
                    SKCodecResult.Unimplemented => $"unsupported {codec.EncodedFormat} variant",
                    _ => $"decoding failed ({result})",
                });
            var rgb = DropAlpha(rgba, size.Width, size.Height);
            int orientation = (int)codec.EncodedOrigin;
            // Skia reads EXIF from JPEG and WebP but not from a PNG eXIf chunk; PIL's exif_transpose uses it.
            if (orientation <= 1 && codec.EncodedFormat == SKEncodedImageFormat.Png) orientation = PngOrientation(bytes, name);
            return orientation is >= 2 and <= 8 ? ExifOrientation.Apply(rgb, orientation) : rgb;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int PngOrientation(byte[] png, string name)
    {
        foreach (var c in PngChunks.Read(png, name, untilImageData: true))
            if (c.Type == "eXIf") return ExifReader.Orientation(png.AsSpan(c.Offset, c.Length));
        return 1;
    }

    private static RgbImage DropAlpha(byte[] rgba, int w, int h)
    {
        var rgb = new byte[(long)w * h * 3];
        var src = MemoryMarshal.Cast<byte, uint>(rgba.AsSpan());
        for (int i = 0, o = 0; i < src.Length; i++, o += 3)
        {
            uint v = src[i]; // little-endian RGBA
            rgb[o] = (byte)v; rgb[o + 1] = (byte)(v >> 8); rgb[o + 2] = (byte)(v >> 16);
        }
        return new RgbImage(w, h, rgb);
    }
}
