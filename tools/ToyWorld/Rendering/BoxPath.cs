namespace DiffusionPeft.ToyWorld.Rendering;

/// <summary>
/// Closed polygons in an object's box coordinates, in fixed point: the object's bounding box spans
/// [-<see cref="One"/>, <see cref="One"/>] along its longer side, centred at 0, y down. Fixed point keeps the
/// rasterizer's input an exact function of the scene: no trigonometry or rounding happens per render.
/// </summary>
public sealed record BoxPath(IReadOnlyList<(int X, int Y)[]> Contours, bool EvenOdd = false)
{
    public const int One = 4096;
}
