using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld;

namespace DiffusionPeft.Tests.ToyWorld;

/// <summary>What a small diffusion model's output might look like next to a clean render: Gaussian blur, then Gaussian noise (seeded).</summary>
public static class ImageDegradation
{
    public static RgbImage BlurAndNoise(RgbImage image, double blurSigma, double noiseSigma, ulong seed)
    {
        int w = image.Width, h = image.Height, r = (int)Math.Ceiling(3 * blurSigma);
        var kernel = Enumerable.Range(-r, 2 * r + 1).Select(t => Math.Exp(-t * t / (2 * blurSigma * blurSigma))).ToArray();
        double sum = kernel.Sum();
        for (int j = 0; j < kernel.Length; j++) kernel[j] /= sum;
        var across = new double[image.Pixels.Length];
        var blurred = new double[image.Pixels.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                    for (int j = -r; j <= r; j++)
                        across[(y * w + x) * 3 + c] += kernel[j + r] * image.Pixels[(y * w + Math.Clamp(x + j, 0, w - 1)) * 3 + c];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                    for (int j = -r; j <= r; j++)
                        blurred[(y * w + x) * 3 + c] += kernel[j + r] * across[(Math.Clamp(y + j, 0, h - 1) * w + x) * 3 + c];
        var rng = new ToyRandom(seed);
        var px = new byte[blurred.Length];
        for (int i = 0; i < px.Length; i++)
        {
            double gaussian = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            px[i] = (byte)Math.Clamp(Math.Round(blurred[i] + noiseSigma * gaussian), 0, 255);
        }
        return new RgbImage(w, h, px);
    }
}
