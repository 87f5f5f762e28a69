namespace DiffusionPeft.DreamBooth.Data;

/// <summary>A decoded image: 8-bit RGB, row-major, <c>Width * Height * 3</c> bytes, EXIF orientation already applied.</summary>
public sealed record DecodedImage(int Width, int Height, byte[] Rgb)
{
    public void EnsureValid(string path)
    {
        if (Width <= 0 || Height <= 0 || Rgb.Length != (long)Width * Height * 3)
            throw new InvalidDataException($"{path}: decoder returned {Width}x{Height} with {Rgb.Length} bytes (expected {(long)Width * Height * 3})");
    }
}

/// <summary>
/// Decodes an image file, or throws naming the file. The production decoder is <c>ImageLoaderDecoder</c> over Core's <c>ImageLoader</c>
/// (SkiaSharp, EXIF applied); tests use fakes. Any exception counts as "does not decode".
/// </summary>
public interface IImageDecoder
{
    DecodedImage Decode(string path);
}
