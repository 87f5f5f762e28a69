using System.Runtime.CompilerServices;
using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.Metrics;

/// <summary>Resize shorter side (Pillow bicubic), center crop, ToTensor, Normalize: the torchvision pipeline of the DreamBooth evaluation.</summary>
public sealed record PreprocessSpec(string Name, int ResizeShorter, int Crop, float[] Mean, float[] Std)
{
    /// <summary>A stable string naming every parameter, part of embedding-cache keys.</summary>
    public string Identity =>
        $"{Name}:resize{ResizeShorter}:bicubic-pil:crop{Crop}:mean{string.Join(',', Mean.Select(m => m.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}" +
        $":std{string.Join(',', Std.Select(s => s.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}";
}

/// <summary>Turns RGB images into float32 NCHW model inputs; thread-safe, no per-pixel allocations.</summary>
public sealed class ImagePreprocessor
{
    public PreprocessSpec Spec { get; }
    private readonly float[][] _lut; // per channel: (v / 255f - mean) / std for every uint8 v, computed exactly as the formula

    public ImagePreprocessor(PreprocessSpec spec)
    {
        if (spec.Mean.Length != 3 || spec.Std.Length != 3) throw new ArgumentException("mean and std need 3 values (R, G, B)", nameof(spec));
        if (spec.Crop <= 0 || spec.ResizeShorter < spec.Crop) throw new ArgumentException($"resize {spec.ResizeShorter} must be >= crop {spec.Crop} > 0", nameof(spec));
        Spec = spec;
        _lut = new float[3][];
        for (int c = 0; c < 3; c++)
        {
            _lut[c] = new float[256];
            for (int v = 0; v < 256; v++) _lut[c][v] = (v / 255f - spec.Mean[c]) / spec.Std[c];
        }
    }

    public int Crop => Spec.Crop;
    public int ValuesPerImage => 3 * Spec.Crop * Spec.Crop;

    public CenterCropGeometry GeometryOf(int width, int height) =>
        CenterCropGeometry.For(width, height, Spec.ResizeShorter, Spec.Crop);

    /// <summary>The uint8 crop after Resize + CenterCrop (interleaved RGB, Crop x Crop).</summary>
    public RgbImage CropU8(RgbImage image) => GeometryOf(image.Width, image.Height).Apply(image);

    /// <summary>Writes <c>(u8 / 255f - mean) / std</c> in float32, CHW, into <paramref name="destination"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Normalize(RgbImage crop, Span<float> destination)
    {
        int n = crop.Width * crop.Height;
        if (destination.Length < 3 * n) throw new ArgumentException($"destination holds {destination.Length} floats, needs {3 * n}", nameof(destination));
        ReadOnlySpan<byte> px = crop.Pixels;
        var r = destination[..n];
        var g = destination.Slice(n, n);
        var b = destination.Slice(2 * n, n);
        float[] lr = _lut[0], lg = _lut[1], lb = _lut[2];
        for (int i = 0, j = 0; i < n; i++, j += 3)
        {
            r[i] = lr[px[j]];
            g[i] = lg[px[j + 1]];
            b[i] = lb[px[j + 2]];
        }
    }

    public void Process(RgbImage image, Span<float> destination) => Normalize(CropU8(image), destination);

    public float[] Process(RgbImage image)
    {
        var dst = new float[ValuesPerImage];
        Process(image, dst);
        return dst;
    }

    /// <summary>A [images.Count, 3, Crop, Crop] batch, images processed in parallel.</summary>
    public float[] ProcessBatch(IReadOnlyList<RgbImage> images)
    {
        var dst = new float[images.Count * ValuesPerImage];
        Parallel.For(0, images.Count, i => Process(images[i], dst.AsSpan(i * ValuesPerImage, ValuesPerImage)));
        return dst;
    }
}

/// <summary>DINO ViT-S/16 evaluation preprocessing: Resize(256, BICUBIC), CenterCrop(224), ImageNet mean/std.</summary>
public static class DinoPreprocessor
{
    public static readonly PreprocessSpec Spec = new("dino", 256, 224, [0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);
    public static ImagePreprocessor Create() => new(Spec);
}

/// <summary>CLIP evaluation preprocessing: Resize(224, BICUBIC), CenterCrop(224), CLIP mean/std.</summary>
public static class ClipPreprocessor
{
    public static readonly PreprocessSpec Spec = new("clip", 224, 224,
        [0.48145466f, 0.4578275f, 0.40821073f], [0.26862954f, 0.26130258f, 0.27577711f]);
    public static ImagePreprocessor Create() => new(Spec);
}
