namespace DiffusionPeft.Core.Imaging;

/// <summary>
/// Applies an EXIF orientation (1..8) to stored pixels so they come out upright, as PIL's
/// ImageOps.exif_transpose does: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
/// 7 transverse, 8 rotate 90 counter-clockwise. Orientations 5..8 swap width and height.
/// </summary>
public static class ExifOrientation
{
    public static RgbImage Apply(RgbImage src, int orientation)
    {
        if (orientation is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(orientation), $"EXIF orientation {orientation} is not in 1..8");
        if (orientation == 1) return src;
        int w = src.Width, h = src.Height;
        bool swap = orientation >= 5;
        int ow = swap ? h : w, oh = swap ? w : h;
        var dst = new byte[src.Pixels.Length];
        var s = src.Pixels;
        for (int y = 0; y < oh; y++)
        {
            int o = y * ow * 3;
            for (int x = 0; x < ow; x++, o += 3)
            {
                // Source coordinates of output pixel (x, y).
                var (sx, sy) = orientation switch
                {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (y, h - 1 - x),
                    7 => (w - 1 - y, h - 1 - x),
                    _ => (w - 1 - y, x), // 8
                };
                int i = (sy * w + sx) * 3;
                dst[o] = s[i]; dst[o + 1] = s[i + 1]; dst[o + 2] = s[i + 2];
            }
        }
        return new RgbImage(ow, oh, dst);
    }
}
