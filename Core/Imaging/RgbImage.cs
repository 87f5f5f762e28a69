namespace DiffusionPeft.Core.Imaging;

/// <summary>An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B (stride = 3 * Width).</summary>
public sealed record RgbImage
{
    public int Width { get; }
    public int Height { get; }
    public byte[] Pixels { get; }

    public RgbImage(int width, int height, byte[] pixels)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"image size {width}x{height} must be positive");
        if (pixels.Length != checked(width * height * 3))
            throw new ArgumentException($"{width}x{height} RGB needs {width * height * 3} bytes, got {pixels.Length}", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public static RgbImage Blank(int width, int height, byte r = 0, byte g = 0, byte b = 0)
    {
        var px = new byte[width * height * 3];
        for (int i = 0; i < px.Length; i += 3) { px[i] = r; px[i + 1] = g; px[i + 2] = b; }
        return new RgbImage(width, height, px);
    }

    public int Stride => Width * 3;

    public Span<byte> Row(int y) => Pixels.AsSpan(y * Stride, Stride);

    /// <summary>A copy of the rectangle [left, left + width) x [top, top + height).</summary>
    public RgbImage Crop(int left, int top, int width, int height)
    {
        if (left < 0 || top < 0 || width <= 0 || height <= 0 || left + width > Width || top + height > Height)
            throw new ArgumentOutOfRangeException(nameof(left), $"crop ({left},{top},{width}x{height}) is outside the {Width}x{Height} image");
        var px = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            Pixels.AsSpan((top + y) * Stride + left * 3, width * 3).CopyTo(px.AsSpan(y * width * 3));
        return new RgbImage(width, height, px);
    }

    /// <summary>Planar copy (C, H, W), the layout of torchvision's ToTensor before scaling.</summary>
    public byte[] ToChw()
    {
        int n = Width * Height;
        var chw = new byte[3 * n];
        for (int i = 0; i < n; i++)
        {
            chw[i] = Pixels[3 * i];
            chw[n + i] = Pixels[3 * i + 1];
            chw[2 * n + i] = Pixels[3 * i + 2];
        }
        return chw;
    }
}
