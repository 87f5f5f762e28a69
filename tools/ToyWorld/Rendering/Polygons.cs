namespace DiffusionPeft.ToyWorld.Rendering;

/// <summary>Polygon builders in natural coordinates (y down), for shapes and subject decorations.</summary>
public static class Polygons
{
    /// <summary>A regular polygon approximating a circle, first vertex at the top.</summary>
    public static (double X, double Y)[] Circle(double cx, double cy, double r, int vertices = 96) =>
        Enumerable.Range(0, vertices).Select(i =>
        {
            double a = -Math.PI / 2 + 2 * Math.PI * i / vertices;
            return (cx + r * Math.Cos(a), cy + r * Math.Sin(a));
        }).ToArray();

    public static (double X, double Y)[] Rect(double left, double top, double right, double bottom) =>
        [(left, top), (right, top), (right, bottom), (left, bottom)];

    /// <summary>A five-pointed star pointing up, outer radius 1.</summary>
    public static (double X, double Y)[] Star(double innerRadius) =>
        Enumerable.Range(0, 10).Select(i =>
        {
            double r = i % 2 == 0 ? 1 : innerRadius, a = -Math.PI / 2 + Math.PI * i / 5;
            return (r * Math.Cos(a), r * Math.Sin(a));
        }).ToArray();

    /// <summary>The classic heart curve (x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t), upright, scaled to about radius 1.</summary>
    public static (double X, double Y)[] Heart(int vertices = 96) =>
        Enumerable.Range(0, vertices).Select(i =>
        {
            double t = 2 * Math.PI * i / vertices, s = Math.Sin(t);
            double x = 16 * s * s * s, y = 13 * Math.Cos(t) - 5 * Math.Cos(2 * t) - 2 * Math.Cos(3 * t) - Math.Cos(4 * t);
            return (x / 16, -y / 16);
        }).ToArray();

    /// <summary>Bands of the given width, alternate ones kept, covering [-extent, extent]² along the axis (x bands if <paramref name="vertical"/>).</summary>
    public static IEnumerable<(double X, double Y)[]> Bands(double width, double offset, bool vertical, double extent = 1.5)
    {
        for (double a = -extent + offset; a < extent; a += 2 * width)
            yield return vertical ? Rect(a, -extent, a + width, extent) : Rect(-extent, a, extent, a + width);
    }

    /// <summary>Discs of radius <paramref name="r"/> on a square grid of spacing <paramref name="spacing"/>, every other row shifted half a step.</summary>
    public static IEnumerable<(double X, double Y)[]> Dots(double spacing, double r, double extent = 1.3)
    {
        int row = 0;
        for (double y = -extent; y <= extent; y += spacing, row++)
            for (double x = -extent + (row % 2) * spacing / 2; x <= extent; x += spacing)
                yield return Circle(x, y, r, 24);
    }

    /// <summary>The squares of one colour of a checkerboard of cell <paramref name="cell"/> covering [-extent, extent]².</summary>
    public static IEnumerable<(double X, double Y)[]> Checks(double cell, double extent = 1.2)
    {
        int n = (int)Math.Ceiling(extent / cell);
        for (int i = -n; i < n; i++)
            for (int j = -n; j < n; j++)
                if (((i + j) & 1) == 0) yield return Rect(i * cell, j * cell, (i + 1) * cell, (j + 1) * cell);
    }
}
