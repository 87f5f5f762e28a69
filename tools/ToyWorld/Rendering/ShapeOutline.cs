using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Rendering;

/// <summary>
/// A shape's outline in its natural coordinates (radius about 1 around the shape's own centre) and the map from
/// natural to box coordinates (bounding box centred, longer side [-1, 1]). Decorations of DreamBooth subjects are
/// drawn in natural coordinates too, so "a disc at the star's centre" means the star's centre, not its box's.
/// </summary>
public sealed class ShapeOutline
{
    private readonly double _centreX, _centreY, _halfSide;

    public ToyShape Shape { get; }
    public bool EvenOdd { get; }
    public IReadOnlyList<(double X, double Y)[]> NaturalContours { get; }
    /// <summary>The silhouette in box coordinates.</summary>
    public BoxPath Path { get; }

    public ShapeOutline(ToyShape shape, IReadOnlyList<(double X, double Y)[]> naturalContours, bool evenOdd = false)
    {
        Shape = shape;
        EvenOdd = evenOdd;
        NaturalContours = naturalContours;
        var all = naturalContours.SelectMany(c => c).ToArray();
        double minX = all.Min(p => p.X), maxX = all.Max(p => p.X), minY = all.Min(p => p.Y), maxY = all.Max(p => p.Y);
        _centreX = (minX + maxX) / 2;
        _centreY = (minY + maxY) / 2;
        _halfSide = Math.Max(maxX - minX, maxY - minY) / 2;
        Path = ToBox(naturalContours, evenOdd);
    }

    /// <summary>Polygons given in this shape's natural coordinates, in box coordinates.</summary>
    public BoxPath ToBox(IEnumerable<(double X, double Y)[]> naturalContours, bool evenOdd = false) =>
        new(naturalContours.Select(c => c.Select(p => (Fixed((p.X - _centreX) / _halfSide), Fixed((p.Y - _centreY) / _halfSide))).ToArray()).ToArray(), evenOdd);

    /// <summary>The silhouette scaled by <paramref name="factor"/> about the shape's natural centre (an inset for an outline).</summary>
    public BoxPath Scaled(double factor) => ToBox(NaturalContours.Select(c => c.Select(p => (p.X * factor, p.Y * factor)).ToArray()), EvenOdd);

    private static int Fixed(double v) => (int)Math.Round(v * BoxPath.One, MidpointRounding.AwayFromZero);
}
