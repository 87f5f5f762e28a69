using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Rendering;

namespace DiffusionPeft.ToyWorld.Subjects;

/// <summary>
/// The twelve DreamBooth subjects of the toy world. Each has its own rare identifier (one token in
/// <see cref="Vocabulary.ToyVocabulary"/>, never in a base caption) and a class noun that the grammar has.
/// </summary>
public static class ToySubjects
{
    public static IReadOnlyList<ToySubject> All { get; } =
    [
        Subject("sunny_star", "sks", ToyShape.Star, ToyColour.Black, "a yellow star with a red centre and a black outline",
            Inset(ToyShape.Star, 0.7, ToyColour.Yellow), Disc(ToyShape.Star, 0, 0, 0.2, ToyColour.Red)),
        Subject("dotted_circle", "zwx", ToyShape.Circle, ToyColour.Blue, "a blue circle with white polka dots",
            Clipped(ToyShape.Circle, Polygons.Dots(0.55, 0.14), ToyColour.White)),
        Subject("split_square", "qvf", ToyShape.Square, ToyColour.Orange, "a square split along a diagonal, orange above and blue below",
            Clipped(ToyShape.Square, [[(1.2, -0.8), (1.2, 1.2), (-0.8, 1.2)]], ToyColour.Blue)),
        Subject("striped_heart", "xjb", ToyShape.Heart, ToyColour.Red, "a red heart with white horizontal stripes",
            Clipped(ToyShape.Heart, Polygons.Bands(0.2, 0.1, vertical: false), ToyColour.White)),
        Subject("two_band_ring", "pqk", ToyShape.Ring, ToyColour.Green, "a ring with a green outer band and a yellow inner band",
            Clipped(ToyShape.Ring, [Polygons.Circle(0, 0, 0.8)], ToyColour.Yellow)),
        Subject("checked_diamond", "vzm", ToyShape.Diamond, ToyColour.White, "a white diamond with black checks",
            Clipped(ToyShape.Diamond, Polygons.Checks(0.34), ToyColour.Black)),
        Subject("framed_cross", "kxq", ToyShape.Cross, ToyColour.Black, "a red cross with a thick black border",
            Natural(ToyShape.Cross, [ShapeOutlines.Plus(0.17, 0.86)], ToyColour.Red)),
        Subject("eye_triangle", "jfz", ToyShape.Triangle, ToyColour.Green, "a green triangle with a white eye and a black pupil",
            Disc(ToyShape.Triangle, 0, 0.08, 0.3, ToyColour.White),
            Disc(ToyShape.Triangle, 0, 0.08, 0.13, ToyColour.Black)),
        Subject("bullseye_circle", "wqy", ToyShape.Circle, ToyColour.Red, "a circle of red and white rings, a bullseye",
            Disc(ToyShape.Circle, 0, 0, 0.72, ToyColour.White),
            Disc(ToyShape.Circle, 0, 0, 0.46, ToyColour.Red), Disc(ToyShape.Circle, 0, 0, 0.2, ToyColour.White)),
        Subject("two_tone_heart", "bzv", ToyShape.Heart, ToyColour.Pink, "a heart split down the middle, pink on the left and purple on the right",
            Clipped(ToyShape.Heart, [Polygons.Rect(0, -1.5, 1.5, 1.5)], ToyColour.Purple)),
        Subject("window_square", "yxg", ToyShape.Square, ToyColour.Black, "a black square frame with four yellow panes, a window",
            Natural(ToyShape.Square, [Polygons.Rect(-0.8, -0.8, -0.1, -0.1), Polygons.Rect(0.1, -0.8, 0.8, -0.1),
                Polygons.Rect(-0.8, 0.1, -0.1, 0.8), Polygons.Rect(0.1, 0.1, 0.8, 0.8)], ToyColour.Yellow)),
        Subject("banded_star", "hzk", ToyShape.Star, ToyColour.Blue, "a star with three horizontal bands: blue, white and red",
            Clipped(ToyShape.Star, [Polygons.Rect(-1.5, -0.2, 1.5, 0.25)], ToyColour.White),
            Clipped(ToyShape.Star, [Polygons.Rect(-1.5, 0.25, 1.5, 1.5)], ToyColour.Red)),
    ];

    public static IReadOnlyList<string> Identifiers { get; } = All.Select(s => s.Identifier).ToArray();

    public static ToySubject ByName(string name) => All.FirstOrDefault(s => s.Name == name)
        ?? throw new ArgumentException($"'{name}' is not a toy-world subject (subjects: {string.Join(", ", All.Select(s => s.Name))})");

    /// <summary>A subject whose silhouette is filled with <paramref name="baseColour"/>, then decorated layer by layer.</summary>
    private static ToySubject Subject(string name, string identifier, ToyShape shape, ToyColour baseColour, string description,
        params ObjectLayer[] decorations) =>
        new(name, identifier, shape, baseColour, description, [new ObjectLayer(ShapeOutlines.Of(shape).Path, ToyPalette.Of(baseColour)), .. decorations]);

    private static ObjectLayer Inset(ToyShape shape, double factor, ToyColour colour) => new(ShapeOutlines.Of(shape).Scaled(factor), ToyPalette.Of(colour));

    private static ObjectLayer Disc(ToyShape shape, double cx, double cy, double r, ToyColour colour) =>
        Natural(shape, [Polygons.Circle(cx, cy, r, 48)], colour);

    private static ObjectLayer Natural(ToyShape shape, IEnumerable<(double X, double Y)[]> polygons, ToyColour colour) =>
        new(ShapeOutlines.Of(shape).ToBox(polygons), ToyPalette.Of(colour));

    private static ObjectLayer Clipped(ToyShape shape, IEnumerable<(double X, double Y)[]> polygons, ToyColour colour) =>
        new(ShapeOutlines.Of(shape).ToBox(polygons), ToyPalette.Of(colour), ClipToSilhouette: true);
}
