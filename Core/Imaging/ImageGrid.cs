namespace DiffusionPeft.Core.Imaging;

/// <summary>Contact sheets and thumbnails.</summary>
public static class ImageGrid
{
    /// <summary>The contact sheet generate writes beside each prompt's images: not one of them, so evaluations skip it.</summary>
    public const string FileName = "grid.png";

    public static bool IsContactSheet(string path) => Path.GetFileName(path) == FileName;

    /// <summary>
    /// Tiles <paramref name="images"/> row-major into <paramref name="columns"/> columns on a background, each in a
    /// cell the size of the largest image, centred; <paramref name="gap"/> pixels between and around cells.
    /// </summary>
    public static RgbImage Compose(IReadOnlyList<RgbImage> images, int columns, int gap = 0, byte background = 255)
    {
        if (images.Count == 0) throw new ArgumentException("no images to compose", nameof(images));
        if (columns <= 0) throw new ArgumentOutOfRangeException(nameof(columns));
        columns = Math.Min(columns, images.Count);
        int rows = (images.Count + columns - 1) / columns;
        int cw = images.Max(i => i.Width), chh = images.Max(i => i.Height);
        int w = columns * cw + (columns + 1) * gap, h = rows * chh + (rows + 1) * gap;
        var px = new byte[w * h * 3];
        px.AsSpan().Fill(background);
        for (int k = 0; k < images.Count; k++)
        {
            var im = images[k];
            int x0 = gap + (k % columns) * (cw + gap) + (cw - im.Width) / 2;
            int y0 = gap + (k / columns) * (chh + gap) + (chh - im.Height) / 2;
            for (int y = 0; y < im.Height; y++)
                im.Row(y).CopyTo(px.AsSpan(((y0 + y) * w + x0) * 3));
        }
        return new RgbImage(w, h, px);
    }

    /// <summary>Scales down (never up) so the longer side is at most <paramref name="maxSide"/>, keeping the aspect ratio (Pillow bicubic).</summary>
    public static RgbImage Thumbnail(RgbImage image, int maxSide)
    {
        if (maxSide <= 0) throw new ArgumentOutOfRangeException(nameof(maxSide));
        int longer = Math.Max(image.Width, image.Height);
        if (longer <= maxSide) return image;
        double s = (double)maxSide / longer;
        int w = Math.Max(1, (int)Math.Round(image.Width * s)), h = Math.Max(1, (int)Math.Round(image.Height * s));
        return PilResize.Resize(image, w, h);
    }

    /// <summary>Center crop to a square of the shorter side, then scale to <paramref name="side"/> (uniform grid cells).</summary>
    public static RgbImage SquareThumbnail(RgbImage image, int side)
    {
        int s = Math.Min(image.Width, image.Height);
        var sq = image.Width == image.Height ? image : image.Crop((image.Width - s) / 2, (image.Height - s) / 2, s, s);
        return s == side ? sq : PilResize.Resize(sq, side, side);
    }
}
