using DiffusionPeft.Core.Imaging;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>RGB images as the toy models' input tensor.</summary>
public static class ScenePixels
{
    /// <summary>[N, 3, H, W] in [-1, 1] (2·u/255 − 1), on the CPU; the images share one size.</summary>
    public static Tensor Unit(IReadOnlyList<RgbImage> images)
    {
        if (images.Count == 0) throw new ArgumentException("no images");
        int w = images[0].Width, h = images[0].Height, per = w * h * 3;
        var bytes = new byte[images.Count * per];
        for (int k = 0; k < images.Count; k++)
        {
            if (images[k].Width != w || images[k].Height != h) throw new ArgumentException($"image {k} is {images[k].Width}x{images[k].Height}, the first {w}x{h}");
            images[k].Pixels.CopyTo(bytes, k * per);
        }
        return Unit(bytes, images.Count, h, w);
    }

    /// <summary>Interleaved RGB bytes of <paramref name="count"/> images → [N, 3, H, W] in [-1, 1].</summary>
    public static Tensor Unit(byte[] bytes, int count, int height, int width)
    {
        using var scope = NewDisposeScope();
        var x = tensor(bytes, [count, height, width, 3], ScalarType.Byte).permute(0, 3, 1, 2).to_type(ScalarType.Float32) / 127.5f - 1f;
        return x.contiguous().MoveToOuterDisposeScope();
    }
}
