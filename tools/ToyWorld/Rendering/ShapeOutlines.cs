using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Rendering;

/// <summary>The outline of every shape (all upright; the ring has a hole of 56% of its radius).</summary>
public static class ShapeOutlines
{
    public const double StarInnerRadius = 0.45, RingInnerRadius = 0.56, CrossHalfWidth = 0.3, DiamondHalfWidth = 0.72;

    private static readonly ShapeOutline[] Outlines = Enum.GetValues<ToyShape>().Select(Build).ToArray();

    public static ShapeOutline Of(ToyShape shape) => Outlines[(int)shape];

    private static ShapeOutline Build(ToyShape shape) => shape switch
    {
        ToyShape.Circle => new(shape, [Polygons.Circle(0, 0, 1)]),
        ToyShape.Square => new(shape, [Polygons.Rect(-1, -1, 1, 1)]),
        // Equilateral, circumradius 1, pointing up.
        ToyShape.Triangle => new(shape, [[(0, -1), (Math.Sqrt(3) / 2, 0.5), (-Math.Sqrt(3) / 2, 0.5)]]),
        ToyShape.Star => new(shape, [Polygons.Star(StarInnerRadius)]),
        ToyShape.Ring => new(shape, [Polygons.Circle(0, 0, 1), Polygons.Circle(0, 0, RingInnerRadius)], evenOdd: true),
        ToyShape.Cross => new(shape, [Plus(CrossHalfWidth)]),
        ToyShape.Heart => new(shape, [Polygons.Heart()]),
        ToyShape.Diamond => new(shape, [[(0, -1), (DiamondHalfWidth, 0), (0, 1), (-DiamondHalfWidth, 0)]]),
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "not a toy shape"),
    };

    /// <summary>A plus sign with arms of half-width <paramref name="w"/> reaching ±1.</summary>
    public static (double X, double Y)[] Plus(double w, double reach = 1) =>
        [(-w, -reach), (w, -reach), (w, -w), (reach, -w), (reach, w), (w, w), (w, reach), (-w, reach), (-w, w), (-reach, w), (-reach, -w), (-w, -w)];
}
