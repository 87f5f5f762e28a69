using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.ToyModel.Dino;

/// <summary>
/// Random multi-coloured objects for the toy DINO's training scenes, so that it learns patterns as part of an object's
/// look (base-world objects are one solid colour; the DreamBooth subjects are not). A compound is a class shape in a
/// base colour with one decoration of our own family (an inset, a centre disc, stripes, dots, checks, a half, two
/// bands, an inset with a disc) in one or two other colours. No compound has a DreamBooth subject's shape together
/// with exactly its colours, so no evaluator trains on anything that looks like a subject.
/// </summary>
public static class CompoundObjects
{
    private const int Kinds = 8;

    private static readonly HashSet<string> SubjectLooks = ToySubjects.All.Select(s => Look(s.Class, s.Colours.Select(ToyPalette.Nearest))).ToHashSet();

    /// <summary>A random compound of <paramref name="shape"/>; its first layer is the silhouette in the base colour.</summary>
    public static ToySubject Random(ToyShape shape, ref ToyRandom rng)
    {
        while (true)
        {
            var colours = Distinct(ref rng, 3);
            var outline = ShapeOutlines.Of(shape);
            ObjectLayer Clipped(IEnumerable<(double X, double Y)[]> polygons, ToyColour c) => new(outline.ToBox(polygons), ToyPalette.Of(c), ClipToSilhouette: true);
            ObjectLayer Natural(IEnumerable<(double X, double Y)[]> polygons, ToyColour c) => new(outline.ToBox(polygons), ToyPalette.Of(c));
            int kind = rng.NextInt(Kinds);
            List<ObjectLayer> decorations = kind switch
            {
                0 => [new ObjectLayer(outline.Scaled(Uniform(ref rng, 0.45, 0.75)), ToyPalette.Of(colours[1]))],
                1 => [Natural([Polygons.Circle(0, 0, Uniform(ref rng, 0.18, 0.4), 48)], colours[1])],
                2 => Bands(ref rng, colours[1], Clipped),
                3 => [Clipped(Polygons.Dots(Uniform(ref rng, 0.45, 0.7), Uniform(ref rng, 0.09, 0.16)), colours[1])],
                4 => [Clipped(Polygons.Checks(Uniform(ref rng, 0.28, 0.5)), colours[1])],
                5 => [Clipped([Half(rng.NextInt(6))], colours[1])],
                6 => TwoBands(ref rng, colours, Clipped),
                _ => [new ObjectLayer(outline.Scaled(Uniform(ref rng, 0.6, 0.8)), ToyPalette.Of(colours[1])),
                      Natural([Polygons.Circle(0, 0, Uniform(ref rng, 0.15, 0.3), 48)], colours[2])],
            };
            var used = kind is 6 or 7 ? colours : colours.Take(2).ToArray();
            if (SubjectLooks.Contains(Look(shape, used))) continue;
            return new ToySubject("compound", "", shape, colours[0], $"compound kind {kind}",
                [new ObjectLayer(outline.Path, ToyPalette.Of(colours[0])), .. decorations]);
        }
    }

    private static List<ObjectLayer> Bands(ref ToyRandom rng, ToyColour colour, Func<IEnumerable<(double X, double Y)[]>, ToyColour, ObjectLayer> clipped)
    {
        double width = Uniform(ref rng, 0.14, 0.3);
        return [clipped(Polygons.Bands(width, Uniform(ref rng, 0, width), rng.Chance(0.5)), colour)];
    }

    private static List<ObjectLayer> TwoBands(ref ToyRandom rng, ToyColour[] colours, Func<IEnumerable<(double X, double Y)[]>, ToyColour, ObjectLayer> clipped)
    {
        double a = Uniform(ref rng, -0.45, -0.15), b = Uniform(ref rng, 0.15, 0.45);
        return rng.Chance(0.5)
            ? [clipped([Polygons.Rect(-1.5, a, 1.5, b)], colours[1]), clipped([Polygons.Rect(-1.5, b, 1.5, 1.5)], colours[2])]
            : [clipped([Polygons.Rect(a, -1.5, b, 1.5)], colours[1]), clipped([Polygons.Rect(b, -1.5, 1.5, 1.5)], colours[2])];
    }

    /// <summary>One of six halves of the natural square [-1.5, 1.5]²: left, right, top, bottom, and the two diagonal ones.</summary>
    private static (double X, double Y)[] Half(int which) => which switch
    {
        0 => Polygons.Rect(-1.5, -1.5, 0, 1.5),
        1 => Polygons.Rect(0, -1.5, 1.5, 1.5),
        2 => Polygons.Rect(-1.5, -1.5, 1.5, 0),
        3 => Polygons.Rect(-1.5, 0, 1.5, 1.5),
        4 => [(-1.5, -1.5), (1.5, -1.5), (-1.5, 1.5)],
        _ => [(1.5, -1.5), (1.5, 1.5), (-1.5, 1.5)],
    };

    private static ToyColour[] Distinct(ref ToyRandom rng, int count)
    {
        var pool = ToyPalette.All.ToList();
        var picked = new ToyColour[count];
        for (int i = 0; i < count; i++)
        {
            int k = rng.NextInt(pool.Count);
            picked[i] = pool[k];
            pool.RemoveAt(k);
        }
        return picked;
    }

    private static double Uniform(ref ToyRandom rng, double min, double max) => min + rng.NextDouble() * (max - min);

    private static string Look(ToyShape shape, IEnumerable<ToyColour> colours) => $"{shape}:{string.Join(',', colours.Distinct().Order())}";
}
