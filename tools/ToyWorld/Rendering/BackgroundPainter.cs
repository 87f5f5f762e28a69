using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.ToyWorld.Rendering;

/// <summary>
/// Paints backgrounds in plain integer C#, pixel by pixel, so they are the same on every machine (Skia's shaders
/// pick SIMD code per CPU and can differ by one level).
/// </summary>
public static class BackgroundPainter
{
    public static RgbImage Paint(SceneBackground background)
    {
        const int n = ToyGeometry.ImageSize;
        var px = new byte[n * n * 3];
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
            {
                var c = ColourAt(background, x, y);
                int i = (y * n + x) * 3;
                px[i] = c.R; px[i + 1] = c.G; px[i + 2] = c.B;
            }
        return new RgbImage(n, n, px);
    }

    public static Rgb ColourAt(SceneBackground b, int x, int y)
    {
        Rgb main = ToyPalette.Of(b.Colour), companion = ToyPalette.Companion(b.Colour);
        switch (b.Texture)
        {
            case BackgroundTexture.Plain:
                return main;
            case BackgroundTexture.Gradient:
            {
                const int last = ToyGeometry.ImageSize - 1;
                int t = b.Axis == PatternAxis.Y ? y : x;
                if (b.Reversed) t = last - t;
                return new((byte)Mix(main.R, companion.R, t, last), (byte)Mix(main.G, companion.G, t, last), (byte)Mix(main.B, companion.B, t, last));
            }
            case BackgroundTexture.Striped:
            {
                int t = b.Axis == PatternAxis.Y ? y + b.PhaseY : x + b.PhaseX;
                return (t / SceneBackground.StripeWidth) % 2 == 0 ? main : companion;
            }
            case BackgroundTexture.Checked:
                return ((x + b.PhaseX) / SceneBackground.CheckSize + (y + b.PhaseY) / SceneBackground.CheckSize) % 2 == 0 ? main : companion;
            default:
                throw new ArgumentOutOfRangeException(nameof(b), b.Texture, "not a background texture");
        }
    }

    /// <summary>(a·(n − t) + b·t) / n rounded, in integers.</summary>
    private static int Mix(int a, int b, int t, int n) => (a * (n - t) + b * t + n / 2) / n;
}
