using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// A fitted background: its family, layout and two colours (<see cref="First"/> at class 0 or at the start of a
/// gradient, <see cref="Second"/> at class 1 or the gradient's end; equal for a plain one) and its cost (the sum over
/// pixels of the squared RGB residual, each capped at <see cref="BackgroundFitter.Truncation"/>²). <see cref="Period"/>
/// is two stripe widths for stripes and the cell size for checks.
/// </summary>
public sealed record BackgroundModel(BackgroundTexture Texture, PatternAxis Axis, int Period, int PhaseX, int PhaseY,
    (double R, double G, double B) First, (double R, double G, double B) Second, double Cost)
{
    /// <summary>RGB distance between the two colours (0 for plain).</summary>
    public double Contrast => Math.Sqrt(Sq(First.R - Second.R) + Sq(First.G - Second.G) + Sq(First.B - Second.B));

    /// <summary>The model's colour at pixel (x, y).</summary>
    public (double R, double G, double B) ColourAt(int x, int y)
    {
        switch (Texture)
        {
            case BackgroundTexture.Plain:
                return First;
            case BackgroundTexture.Gradient:
            {
                double t = (Axis == PatternAxis.Y ? y : x) / (double)(ToyGeometry.ImageSize - 1);
                return (First.R + t * (Second.R - First.R), First.G + t * (Second.G - First.G), First.B + t * (Second.B - First.B));
            }
            default:
                return ClassAt(x, y) == 0 ? First : Second;
        }
    }

    /// <summary>The model's colour at every pixel, channel by channel (row-major).</summary>
    public (float[] R, float[] G, float[] B) Predict()
    {
        const int n = ToyGeometry.ImageSize;
        var (r, g, b) = (new float[n * n], new float[n * n], new float[n * n]);
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
            {
                var c = ColourAt(x, y);
                (r[y * n + x], g[y * n + x], b[y * n + x]) = ((float)c.R, (float)c.G, (float)c.B);
            }
        return (r, g, b);
    }

    /// <summary>The colour class (0 or 1) of a pixel under a striped or checked layout.</summary>
    public int ClassAt(int x, int y) => ClassAt(Texture, Axis, Period, PhaseX, PhaseY, x, y);

    public static int ClassAt(BackgroundTexture texture, PatternAxis axis, int period, int phaseX, int phaseY, int x, int y) => texture switch
    {
        // Stripes half a period wide: class = floor(2(t + phase) / period) mod 2, exact for odd periods too.
        BackgroundTexture.Striped => (2 * ((axis == PatternAxis.Y ? y + phaseY : x + phaseX)) / period) & 1,
        BackgroundTexture.Checked => ((x + phaseX) / period + (y + phaseY) / period) & 1,
        _ => 0,
    };

    private static double Sq(double v) => v * v;
}
