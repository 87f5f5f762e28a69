using DiffusionPeft.Core.Numerics;
using DiffusionPeft.DreamBooth.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Data;

/// <summary>How one image becomes a training crop: the resized size, the crop's corner and the flip.</summary>
public sealed record CropPlan(int ResizedWidth, int ResizedHeight, int Left, int Top, int Width, int Height, bool Flip);

/// <summary>
/// Resize so the image covers the target (the shorter side, relative to the target's aspect, fits exactly),
/// crop to the target (center or random), optional horizontal flip, scale to [-1, 1] CHW float32 — what
/// diffusers' DreamBooth dataset does with Resize + CenterCrop/RandomCrop + ToTensor + Normalize(0.5, 0.5).
/// The resize is bicubic with antialiasing (PyTorch's <c>_upsample_bicubic2d_aa</c>: the kernel widens with the
/// downscale factor, as PIL's and torchvision's antialiased resize), clamped to the pixel range. Augmentation draws from a generator keyed by (seed, epoch, item), so it needs no
/// saved state to resume.
/// </summary>
public static class TrainingImageTransform
{
    private const ulong AugmentStream = 0x4155474D;

    public static CropPlan Plan(int width, int height, int targetWidth, int targetHeight, CropMode crop, bool flip, long seed, int epoch, int item)
    {
        double scale = Math.Max((double)targetWidth / width, (double)targetHeight / height);
        int rw = Math.Max(targetWidth, (int)Math.Round(width * scale));
        int rh = Math.Max(targetHeight, (int)Math.Round(height * scale));
        var rng = SplitMix64.Keyed((ulong)seed, AugmentStream, (ulong)epoch, (ulong)item);
        int left, top;
        if (crop == CropMode.Random)
        {
            left = rng.NextInt(rw - targetWidth + 1);
            top = rng.NextInt(rh - targetHeight + 1);
        }
        else
        {
            // torchvision CenterCrop: int(round((size - crop) / 2.0)).
            left = (int)Math.Round((rw - targetWidth) / 2.0, MidpointRounding.ToEven);
            top = (int)Math.Round((rh - targetHeight) / 2.0, MidpointRounding.ToEven);
        }
        bool doFlip = flip && rng.NextDouble() < 0.5;
        return new CropPlan(rw, rh, left, top, targetWidth, targetHeight, doFlip);
    }

    /// <summary>The crop of <paramref name="image"/> described by <paramref name="plan"/>, as float32 [3, H, W] in [-1, 1].</summary>
    public static Tensor ToTensor(DecodedImage image, CropPlan plan)
    {
        using var scope = NewDisposeScope();
        var hwc = tensor(image.Rgb, [image.Height, image.Width, 3], ScalarType.Byte, CPU);
        var x = hwc.permute(2, 0, 1).unsqueeze(0).to_type(ScalarType.Float32).div_(255f);
        if (plan.ResizedWidth != image.Width || plan.ResizedHeight != image.Height)
            x = nn.functional.interpolate(x, [plan.ResizedHeight, plan.ResizedWidth], mode: InterpolationMode.Bicubic,
                align_corners: false, antialias: true).clamp_(0f, 1f);
        x = x.narrow(2, plan.Top, plan.Height).narrow(3, plan.Left, plan.Width);
        if (plan.Flip) x = x.flip(3);
        return x.squeeze(0).mul(2f).sub_(1f).contiguous().MoveToOuterDisposeScope();
    }
}
