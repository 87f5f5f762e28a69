using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Rendering;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// Each shape's silhouette as coverage on a <see cref="Grid"/>x<see cref="Grid"/> grid over its box (the renderer's
/// own outlines, 4x4 samples per cell), precomputed blurred by Gaussians of <see cref="BlurStep"/>-cell steps up to
/// <see cref="MaxBlurCells"/>, and the soft IoU (Σ min / Σ max) of an observed coverage grid against a template.
/// </summary>
public static class ShapeTemplates
{
    public const int Grid = 24;
    public const double BlurStep = 0.25, MaxBlurCells = 4;
    private const int Samples = 4;

    private static readonly double[][] Sharp = Enum.GetValues<ToyShape>().Select(s => Coverage(ShapeOutlines.Of(s).Path)).ToArray();
    private static readonly double[][][] Blurred = Sharp.Select(t =>
        Enumerable.Range(0, (int)(MaxBlurCells / BlurStep) + 1).Select(k => Blur(t, k * BlurStep)).ToArray()).ToArray();
    private static readonly double[] Fills = Sharp.Select(t => t.Average()).ToArray();

    /// <summary>The sharp coverage grid of a shape (row-major).</summary>
    public static IReadOnlyList<double> Template(ToyShape shape) => Sharp[(int)shape];

    /// <summary>The template blurred by about <paramref name="sigmaCells"/> grid cells (nearest precomputed step).</summary>
    public static IReadOnlyList<double> Template(ToyShape shape, double sigmaCells) =>
        Blurred[(int)shape][(int)Math.Round(Math.Clamp(sigmaCells, 0, MaxBlurCells) / BlurStep)];

    /// <summary>The share of its box a shape covers.</summary>
    public static double Fill(ToyShape shape) => Fills[(int)shape];

    /// <summary>Soft IoU (Σ min / Σ max) of two coverage grids.</summary>
    public static double SoftIou(IReadOnlyList<double> template, ReadOnlySpan<double> observed)
    {
        double inter = 0, union = 0;
        for (int i = 0; i < observed.Length; i++)
        {
            inter += Math.Min(template[i], observed[i]);
            union += Math.Max(template[i], observed[i]);
        }
        return union == 0 ? 0 : inter / union;
    }

    /// <summary>Separable Gaussian blur of a grid, zero outside.</summary>
    private static double[] Blur(double[] grid, double sigma)
    {
        if (sigma == 0) return grid;
        int r = (int)Math.Ceiling(3 * sigma);
        var k = Enumerable.Range(-r, 2 * r + 1).Select(t => Math.Exp(-t * t / (2 * sigma * sigma))).ToArray();
        double sum = k.Sum();
        var tmp = new double[grid.Length];
        var result = new double[grid.Length];
        for (int y = 0; y < Grid; y++)
            for (int x = 0; x < Grid; x++)
                for (int j = -r; j <= r; j++)
                    if (x + j is >= 0 and < Grid) tmp[y * Grid + x] += k[j + r] / sum * grid[y * Grid + x + j];
        for (int y = 0; y < Grid; y++)
            for (int x = 0; x < Grid; x++)
                for (int j = -r; j <= r; j++)
                    if (y + j is >= 0 and < Grid) result[y * Grid + x] += k[j + r] / sum * tmp[(y + j) * Grid + x];
        return result;
    }

    /// <summary>The box-coordinate centre of grid cell <paramref name="i"/> (0..Grid−1) in [-1, 1].</summary>
    public static double CellCentre(int i) => (2.0 * i + 1) / Grid - 1;

    private static double[] Coverage(BoxPath path)
    {
        var grid = new double[Grid * Grid];
        for (int gy = 0; gy < Grid; gy++)
            for (int gx = 0; gx < Grid; gx++)
            {
                int inside = 0;
                for (int sy = 0; sy < Samples; sy++)
                    for (int sx = 0; sx < Samples; sx++)
                    {
                        double x = (2.0 * (gx * Samples + sx) + 1) / (Grid * Samples) - 1;
                        double y = (2.0 * (gy * Samples + sy) + 1) / (Grid * Samples) - 1;
                        if (Inside(path, x * BoxPath.One, y * BoxPath.One)) inside++;
                    }
                grid[gy * Grid + gx] = inside / (double)(Samples * Samples);
            }
        return grid;
    }

    /// <summary>Even-odd crossing test (the shapes are simple polygons, the ring's hole a second contour).</summary>
    private static bool Inside(BoxPath path, double x, double y)
    {
        bool inside = false;
        foreach (var c in path.Contours)
            for (int i = 0, j = c.Length - 1; i < c.Length; j = i++)
            {
                var (xi, yi) = c[i];
                var (xj, yj) = c[j];
                if ((yi > y) != (yj > y) && x < (double)(xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
            }
        return inside;
    }
}
