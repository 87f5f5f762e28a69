namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>An 8-bit sRGB colour.</summary>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    /// <summary>Euclidean distance in RGB.</summary>
    public double DistanceTo(Rgb o) => Math.Sqrt(SquaredDistance(R - o.R, G - o.G, B - o.B));

    /// <summary>The distance from this colour to the nearest point of the RGB segment [a, b] (every mix of a and b).</summary>
    public double DistanceToSegment(Rgb a, Rgb b)
    {
        double dx = b.R - a.R, dy = b.G - a.G, dz = b.B - a.B;
        double len2 = SquaredDistance(dx, dy, dz);
        double t = len2 == 0 ? 0 : Math.Clamp(((R - a.R) * dx + (G - a.G) * dy + (B - a.B) * dz) / len2, 0, 1);
        return Math.Sqrt(SquaredDistance(R - (a.R + t * dx), G - (a.G + t * dy), B - (a.B + t * dz)));
    }

    public override string ToString() => $"#{R:x2}{G:x2}{B:x2}";

    private static double SquaredDistance(double x, double y, double z) => x * x + y * y + z * z;
}
