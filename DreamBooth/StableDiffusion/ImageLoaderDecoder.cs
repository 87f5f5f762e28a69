using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>The production decoder: Metrics' <see cref="ImageLoader"/> (SkiaSharp; JPEG, PNG, WebP; EXIF orientation applied).</summary>
public sealed class ImageLoaderDecoder : IImageDecoder
{
    public static readonly ImageLoaderDecoder Instance = new();

    public DecodedImage Decode(string path)
    {
        var image = ImageLoader.Load(path);
        return new DecodedImage(image.Width, image.Height, image.Pixels);
    }
}
