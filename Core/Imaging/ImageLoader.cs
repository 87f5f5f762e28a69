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

    public static RgbImage Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageDecodeException(path, $"cannot read the file ({e.Message})", e);
        }
        return Decode(bytes, path);
    }

    /// <summary>Decodes encoded bytes; <paramref name="name"/> only labels errors.</summary>
    public static unsafe RgbImage Decode(byte[] bytes, string name)
    {
        if (bytes.Length == 0) throw new ImageDecodeException(name, "the file is empty");
        fixed (byte* p = bytes)
        {
            using var data = SKData.Create((IntPtr)p, bytes.Length);
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
            if (size.Width <= 0 || size.Height <= 0) throw new ImageDecodeException(name, $"invalid image size {size.Width}x{size.Height}");
            // No colour space: Skia then converts nothing (PIL applies no ICC profile either). Unpremul keeps
            // the stored colour under transparent pixels, which convert('RGB') uses as it is.
            var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            var rgba = new byte[info.BytesSize];
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
        var rgb = new byte[w * h * 3];
        var src = MemoryMarshal.Cast<byte, uint>(rgba.AsSpan());
        for (int i = 0, o = 0; i < src.Length; i++, o += 3)
        {
            uint v = src[i]; // little-endian RGBA
            rgb[o] = (byte)v; rgb[o + 1] = (byte)(v >> 8); rgb[o + 2] = (byte)(v >> 16);
        }
        return new RgbImage(w, h, rgb);
    }
}
