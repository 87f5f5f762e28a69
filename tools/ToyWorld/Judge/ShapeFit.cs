using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// Names an object's shape from its coverage map. Per candidate shape, the object is framed by its soft bounding
/// box, but no smaller than the box its area implies for that shape (blur eats points and corners and shrinks the
/// box, never the area), and compared with the shape's template blurred as an image blur of 0, ½, 1 or 1½ px would
/// blur it at that size; the shape's score is the best soft IoU.
/// </summary>
public static class ShapeFit
{
    public static readonly double[] BlurPixels = [0, 0.5, 1, 1.5];

    /// <param name="alpha">Coverage of a w x h window whose top-left pixel is (x0, y0).</param>
    /// <returns>The best shape, every shape's score (enum order) and the object's extent under the best shape.</returns>
    public static (ToyShape Shape, double[] Scores, double Extent) Classify(double[] alpha, int w, int h, int x0, int y0,
        double centreX, double centreY, double boxExtent, double area)
    {
        var shapes = Enum.GetValues<ToyShape>();
        var scores = new double[shapes.Length];
        var extents = new double[shapes.Length];
        Span<double> grid = stackalloc double[ShapeTemplates.Grid * ShapeTemplates.Grid];
        foreach (var shape in shapes)
        {
            double extent = Math.Max(boxExtent, Math.Sqrt(Math.Max(area, 0) / ShapeTemplates.Fill(shape)));
            extents[(int)shape] = extent;
            Sample(alpha, w, h, x0, y0, centreX, centreY, extent, grid);
            foreach (double blur in BlurPixels)
                scores[(int)shape] = Math.Max(scores[(int)shape],
                    ShapeTemplates.SoftIou(ShapeTemplates.Template(shape, blur * ShapeTemplates.Grid / extent), grid));
        }
        int best = Array.IndexOf(scores, scores.Max());
        return ((ToyShape)best, scores, extents[best]);
    }

    /// <summary>The coverage at the template grid's cell centres over the square box of side <paramref name="extent"/>.</summary>
    private static void Sample(double[] alpha, int w, int h, int x0, int y0, double cx, double cy, double extent, Span<double> grid)
    {
        for (int gy = 0; gy < ShapeTemplates.Grid; gy++)
            for (int gx = 0; gx < ShapeTemplates.Grid; gx++)
                grid[gy * ShapeTemplates.Grid + gx] = Bilinear(alpha, w, h,
                    cx + ShapeTemplates.CellCentre(gx) * extent / 2 - x0 - 0.5, cy + ShapeTemplates.CellCentre(gy) * extent / 2 - y0 - 0.5);
    }

    /// <summary>Bilinear interpolation between pixel centres; 0 outside the window.</summary>
    private static double Bilinear(double[] a, int w, int h, double x, double y)
    {
        int ix = (int)Math.Floor(x), iy = (int)Math.Floor(y);
        double fx = x - ix, fy = y - iy;
        double At(int xx, int yy) => xx < 0 || yy < 0 || xx >= w || yy >= h ? 0 : a[yy * w + xx];
        return (1 - fy) * ((1 - fx) * At(ix, iy) + fx * At(ix + 1, iy)) + fy * ((1 - fx) * At(ix, iy + 1) + fx * At(ix + 1, iy + 1));
    }
}
