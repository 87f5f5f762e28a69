namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>
/// The RGB values of the named colours and of each colour's background companion: the second colour of gradient,
/// striped and checked backgrounds (the colour mixed 42% towards white if it is dark, else 30% towards black).
/// An object's colour keeps at least <see cref="MinObjectBackgroundDistance"/> from every mix of the background's
/// two colours, so every object stands out.
/// </summary>
public static class ToyPalette
{
    public const double MinObjectBackgroundDistance = 120;

    public static IReadOnlyList<ToyColour> All { get; } = Enum.GetValues<ToyColour>();

    public static Rgb Of(ToyColour c) => c switch
    {
        ToyColour.Red => new(210, 35, 40),
        ToyColour.Orange => new(245, 125, 20),
        ToyColour.Yellow => new(245, 225, 45),
        ToyColour.Green => new(40, 160, 60),
        ToyColour.Blue => new(40, 80, 215),
        ToyColour.Purple => new(140, 45, 195),
        ToyColour.Pink => new(245, 135, 200),
        ToyColour.White => new(240, 240, 240),
        ToyColour.Gray => new(128, 128, 128),
        ToyColour.Black => new(25, 25, 25),
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, "not a toy colour"),
    };

    public static Rgb Companion(ToyColour c) => c switch
    {
        ToyColour.Red => new(229, 127, 130),
        ToyColour.Orange => new(172, 88, 14),
        ToyColour.Yellow => new(172, 158, 32),
        ToyColour.Green => new(130, 200, 142),
        ToyColour.Blue => new(130, 154, 232),
        ToyColour.Purple => new(188, 133, 220),
        ToyColour.Pink => new(172, 95, 140),
        ToyColour.White => new(168, 168, 168),
        ToyColour.Gray => new(181, 181, 181),
        ToyColour.Black => new(122, 122, 122),
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, "not a toy colour"),
    };

    /// <summary>Whether an object of colour <paramref name="rgb"/> stands out on a background of colour <paramref name="background"/>.</summary>
    public static bool StandsOut(Rgb rgb, ToyColour background) =>
        rgb.DistanceToSegment(Of(background), Companion(background)) >= MinObjectBackgroundDistance;

    /// <summary>The object colours that stand out on a background of colour <paramref name="background"/>.</summary>
    public static IReadOnlyList<ToyColour> ObjectColoursOn(ToyColour background) => ObjectColours[(int)background];

    /// <summary>The named colour nearest to <paramref name="rgb"/> (RGB distance).</summary>
    public static ToyColour Nearest(Rgb rgb) => All.MinBy(c => rgb.DistanceTo(Of(c)));

    private static readonly IReadOnlyList<ToyColour>[] ObjectColours =
        All.Select(bg => (IReadOnlyList<ToyColour>)All.Where(c => StandsOut(Of(c), bg)).ToArray()).ToArray();
}
