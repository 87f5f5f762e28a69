using System.Globalization;

namespace DiffusionPeft.Core.Imaging;

/// <summary>
/// What the image reader accepts before it allocates anything: a declared size over <see cref="MaxPixels"/> is refused
/// from the file's header (so decoding needs at most about 10 bytes per allowed pixel), and a PNG text chunk may inflate
/// to at most <see cref="MaxTextChunkBytes"/>, all of a file's text chunks together to <see cref="MaxTextBytes"/>.
/// The process-wide default reads <c>DPEFT_MAX_IMAGE_PIXELS</c> (e.g. 200000000) once.
/// </summary>
public sealed record ImageLimits
{
    public const string MaxPixelsVariable = "DPEFT_MAX_IMAGE_PIXELS";

    /// <summary>8192 x 8192: a 50-megapixel photo fits; decoding it takes at most about 700 MB.</summary>
    public const long DefaultMaxPixels = 8192L * 8192;

    public long MaxPixels { get; init; } = DefaultMaxPixels;
    /// <summary>Largest image file read (an uncompressed 8192² 16-bit RGBA PNG is 512 MiB).</summary>
    public long MaxFileBytes { get; init; } = 1L << 30;
    public int MaxTextChunkBytes { get; init; } = 1 << 20;
    public long MaxTextBytes { get; init; } = 16 << 20;

    private static ImageLimits? _default;

    /// <summary>The limits <see cref="ImageLoader"/> and <see cref="PngText"/> use unless given others (read on first use).</summary>
    public static ImageLimits Default
    {
        get => _default ??= FromEnvironment();
        set => _default = value;
    }

    public static ImageLimits FromEnvironment()
    {
        var text = Environment.GetEnvironmentVariable(MaxPixelsVariable);
        if (string.IsNullOrWhiteSpace(text)) return new ImageLimits();
        if (!long.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long max) || max < 1)
            throw new ArgumentException($"{MaxPixelsVariable}='{text}' is not a positive whole number of pixels.");
        return new ImageLimits { MaxPixels = max };
    }

    /// <summary>Null when <paramref name="width"/> x <paramref name="height"/> may be decoded, else why not.</summary>
    public string? CheckSize(long width, long height)
    {
        if (width <= 0 || height <= 0) return $"invalid image size {width}x{height}";
        // Also keeps every later int computation (stride, RGBA byte count) far from overflowing.
        if (width > int.MaxValue / 4 || height > int.MaxValue / 4 || width * height > MaxPixels)
            return $"the image declares {width}x{height} pixels, more than the limit of {MaxPixels:N0} pixels " +
                   $"(raise it with {MaxPixelsVariable} or ImageLimits.Default)";
        return null;
    }
}
