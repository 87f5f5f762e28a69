using SkiaSharp;

namespace DiffusionPeft.Core.Imaging;

/// <summary>JPEG encoding through Skia (for thumbnails embedded in reports).</summary>
public static class JpegEncoder
{
    public static unsafe byte[] Encode(RgbImage image, int quality = 85)
    {
        if (quality is < 1 or > 100) throw new ArgumentOutOfRangeException(nameof(quality));
        int n = image.Width * image.Height;
        var rgba = new byte[n * 4];
        var src = image.Pixels;
        for (int i = 0; i < n; i++)
        {
            rgba[4 * i] = src[3 * i]; rgba[4 * i + 1] = src[3 * i + 1]; rgba[4 * i + 2] = src[3 * i + 2]; rgba[4 * i + 3] = 255;
        }
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        fixed (byte* p = rgba)
        {
            using var pixmap = new SKPixmap(info, (IntPtr)p, image.Width * 4);
            using var data = pixmap.Encode(SKEncodedImageFormat.Jpeg, quality)
                ?? throw new InvalidOperationException($"Skia could not encode a {image.Width}x{image.Height} JPEG");
            return data.ToArray();
        }
    }
}
