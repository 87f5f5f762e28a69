using DiffusionPeft.Core.Imaging;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>Conversions between image tensors and 8-bit RGB images.</summary>
public static class ImageTensors
{
    /// <summary>NHWC float in [0, 1] → one RGB image per batch item, rounded as diffusers' numpy_to_pil does.</summary>
    public static IReadOnlyList<RgbImage> ToRgb(Tensor nhwc)
    {
        using var scope = NewDisposeScope();
        var bytes = (nhwc.detach().cpu().to_type(ScalarType.Float32) * 255).round().clamp(0, 255).to_type(ScalarType.Byte).contiguous();
        int n = (int)bytes.shape[0], h = (int)bytes.shape[1], w = (int)bytes.shape[2];
        var images = new List<RgbImage>(n);
        for (int i = 0; i < n; i++) images.Add(new RgbImage(w, h, bytes[i].bytes.ToArray()));
        return images;
    }

    /// <summary>An RGB image → CHW float tensor in [-1, 1] (the VAE's input range).</summary>
    public static Tensor ToTensor(RgbImage image)
    {
        using var scope = NewDisposeScope();
        var hwc = tensor(image.Pixels, [image.Height, image.Width, 3], ScalarType.Byte, CPU);
        return (hwc.permute(2, 0, 1).to_type(ScalarType.Float32) / 127.5 - 1.0).contiguous().MoveToOuterDisposeScope();
    }
}
