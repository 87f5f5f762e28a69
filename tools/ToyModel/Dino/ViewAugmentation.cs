using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel.Dino;

/// <summary>
/// The pixel half of a view (the world half is <see cref="SceneVariation"/>): a random resized crop of the 64 px scene
/// to 56 px (side <see cref="MinCropSide"/>..64 px; 56 px at 1× is the evaluation's centre crop), then per image a
/// Gaussian blur (sometimes), a small colour jitter (brightness, contrast, per-channel gain: colour is identity here,
/// so no hue changes) and Gaussian noise. Every draw comes from the trainer's RNG, so a resumed run sees the same views.
/// </summary>
public sealed record ViewAugmentation
{
    public double MinCropSide { get; init; } = 48;
    public double BlurProbability { get; init; } = 0.5;
    public double MinBlurSigma { get; init; } = 0.3;
    public double MaxBlurSigma { get; init; } = 1.2;
    public double Brightness { get; init; } = 0.08;
    public double Contrast { get; init; } = 0.1;
    public double ChannelGain { get; init; } = 0.03;
    public double MaxNoise { get; init; } = 0.06;

    private const int BlurRadius = 3;

    /// <param name="images">[N, 3, 64, 64] in [-1, 1].</param>
    /// <returns>[N, 3, 56, 56].</returns>
    public Tensor Apply(Tensor images, TrainingRng rng)
    {
        using var scope = NewDisposeScope();
        var device = images.device;
        long n = images.shape[0];
        int size = (int)images.shape[^1];
        var x = Crop(images, rng, size);
        x = Blur(x, rng);

        var u = rng.Rand([n, 6], device);
        Tensor Uniform(int column, double halfWidth) => (u.select(1, column) * 2 - 1) * halfWidth;
        var mean = x.mean([1, 2, 3], keepdim: true);
        var contrast = (1 + Uniform(0, Contrast)).view(n, 1, 1, 1);
        var gain = (1 + stack([Uniform(1, ChannelGain), Uniform(2, ChannelGain), Uniform(3, ChannelGain)], 1)).view(n, 3, 1, 1);
        var brightness = Uniform(4, Brightness).view(n, 1, 1, 1);
        x = (x - mean) * contrast * gain + mean + brightness;
        var noise = (u.select(1, 5) * MaxNoise).view(n, 1, 1, 1);
        x = x + noise * rng.Randn(x.shape, device: device);
        return x.MoveToOuterDisposeScope();
    }

    private Tensor Crop(Tensor images, TrainingRng rng, int size)
    {
        long n = images.shape[0];
        var u = rng.Rand([n, 3], images.device);
        var scale = (MinCropSide + u.select(1, 0) * (size - MinCropSide)) / size;   // crop side / image side
        // The crop's centre keeps the crop inside the image: normalised offset in ±(1 − scale).
        var tx = (u.select(1, 1) * 2 - 1) * (1 - scale);
        var ty = (u.select(1, 2) * 2 - 1) * (1 - scale);
        var zero = zeros_like(scale);
        var theta = stack([stack([scale, zero, tx], 1), stack([zero, scale, ty], 1)], 1);   // [N, 2, 3]
        var grid = nn.functional.affine_grid(theta, [n, 3, ToyDinoEncoder.InputSize, ToyDinoEncoder.InputSize], align_corners: false);
        return nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
    }

    /// <summary>A separable Gaussian blur with a σ per image (σ = 0, a copy, for the images drawn unblurred), borders replicated.</summary>
    private Tensor Blur(Tensor x, TrainingRng rng)
    {
        long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var u = rng.Rand([n, 2], x.device);
        var sigma = where(u.select(1, 0) < BlurProbability, MinBlurSigma + u.select(1, 1) * (MaxBlurSigma - MinBlurSigma), zeros_like(u.select(1, 1)));
        var offsets = arange(-BlurRadius, BlurRadius + 1, ScalarType.Float32, x.device).view(1, -1);
        var s = sigma.view(-1, 1).clamp_min(1e-3f);
        var kernel = (-(offsets * offsets) / (2 * s * s)).exp();
        kernel = kernel / kernel.sum(1, keepdim: true);                             // σ → 0 gives the identity kernel
        var perChannel = kernel.repeat_interleave(c, 0);                            // [N·C, K]
        var flat = nn.functional.pad(x.reshape(1, n * c, h, w), [BlurRadius, BlurRadius, BlurRadius, BlurRadius], TorchSharp.PaddingModes.Replicate);
        flat = nn.functional.conv2d(flat, perChannel.view(n * c, 1, 1, -1), groups: n * c);
        flat = nn.functional.conv2d(flat, perChannel.view(n * c, 1, -1, 1), groups: n * c);
        return flat.view(n, c, h, w);
    }
}
