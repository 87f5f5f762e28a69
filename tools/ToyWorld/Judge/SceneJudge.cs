using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// Reads a 64x64 image back into the world's terms and scores it against a caption. Reading: fit the background
/// (<see cref="BackgroundFitter"/>), fit it again without the pixels that stand out, take what still stands out as
/// objects (<see cref="ObjectSegmenter"/>), and per object name the colour (median of the quarter of its pixels
/// farthest from the background, nearest palette colour), the position (centre of its soft bounding box: edge
/// columns and rows count by their coverage), the shape (<see cref="ShapeFit"/>) and the size (the larger of the
/// soft box and the box the area implies for that shape). A pixel's coverage is its projection onto the line from
/// the background colour to the object colour.
/// </summary>
public static class SceneJudge
{
    private const int N = ToyGeometry.ImageSize;

    public static SceneReading Read(RgbImage image)
    {
        var model = BackgroundFitter.Fit(image);
        var residual = Residual(image, model);
        model = BackgroundFitter.Refit(image, model, Dilate(residual, BackgroundFitter.Truncation));
        residual = Residual(image, model);
        var components = ObjectSegmenter.Components(residual);
        var owner = new int[N * N];
        for (int k = 0; k < components.Count; k++)
            foreach (int i in components[k]) owner[i] = k + 1;
        var objects = components.Select((c, k) => ObjectReader.Read(image, model, residual, owner, k + 1, c)).ToList();
        return new SceneReading(ReadBackground(model), objects);
    }

    public static JudgeScore Score(RgbImage image, string caption) => Score(image, CaptionParser.Parse(caption));

    public static JudgeScore Score(RgbImage image, ToyCaption caption) => Score(Read(image), caption);

    /// <summary>
    /// Scores a reading attribute by attribute, only for what the caption mentions. Caption objects are matched to
    /// the objects found so that the most mentioned attributes agree (ties: the larger object goes first); an object
    /// the caption names but the image lacks scores false on every mentioned attribute.
    /// </summary>
    public static JudgeScore Score(SceneReading reading, ToyCaption caption)
    {
        var found = reading.Objects;
        ObjectReading? main = null, second = null;
        int best = -1;
        var candidates = found.Cast<ObjectReading?>().Append(null).ToArray();
        foreach (var m in candidates)
            foreach (var s in caption.Second is null ? [null] : candidates)
            {
                if (s is not null && ReferenceEquals(m, s)) continue;
                int agree = Agreements(caption.Main, m) + (caption.Second is null ? 0 : Agreements(caption.Second, s));
                if (agree > best) (best, main, second) = (agree, m, s);
            }
        var bg = caption.Background;
        return new JudgeScore(ScoreObject(caption.Main, main), caption.Second is null ? null : ScoreObject(caption.Second, second),
            bg?.Colour is { } c ? c == reading.Background.Colour : null,
            bg?.Texture is { } t ? t == reading.Background.Texture : null,
            found.Count, main);
    }

    private static int Agreements(ObjectPhrase phrase, ObjectReading? o) =>
        o is null ? 0 : ScoreObject(phrase, o).Results.Count(r => r.Correct) * 2 + 1; // any object beats none

    private static ObjectScore ScoreObject(ObjectPhrase p, ObjectReading? o) => new(
        p.Colour is { } c ? o?.Colour == c : null,
        o?.Shape == p.Shape,
        p.Size is { } s ? o?.Size == s : null,
        p.Position is { } q ? o?.Position == q : null);

    private static double[] Residual(RgbImage image, BackgroundModel model)
    {
        var r = new double[N * N];
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++)
            {
                int i = y * N + x;
                var (br, bg, bb) = model.ColourAt(x, y);
                double dr = image.Pixels[3 * i] - br, dg = image.Pixels[3 * i + 1] - bg, db = image.Pixels[3 * i + 2] - bb;
                r[i] = Math.Sqrt(dr * dr + dg * dg + db * db);
            }
        return r;
    }

    /// <summary>Pixels whose residual exceeds <paramref name="threshold"/>, grown by one pixel (8-neighbourhood).</summary>
    private static bool[] Dilate(double[] residual, double threshold)
    {
        var mask = new bool[N * N];
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++)
            {
                if (residual[y * N + x] <= threshold) continue;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int nx = x + dx, ny = y + dy;
                        if (nx >= 0 && ny >= 0 && nx < N && ny < N) mask[ny * N + nx] = true;
                    }
            }
        return mask;
    }

    private static BackgroundReading ReadBackground(BackgroundModel model)
    {
        if (model.Texture == BackgroundTexture.Plain) return new(model.Texture, ToyPalette.Nearest(ToRgb(model.First)), model);
        var (a, b) = (ToRgb(model.First), ToRgb(model.Second));
        var colour = ToyPalette.All.MinBy(c =>
        {
            Rgb main = ToyPalette.Of(c), companion = ToyPalette.Companion(c);
            return Math.Min(a.DistanceTo(main) + b.DistanceTo(companion), a.DistanceTo(companion) + b.DistanceTo(main));
        });
        return new(model.Texture, colour, model);
    }

    internal static Rgb ToRgb((double R, double G, double B) c) =>
        new((byte)Math.Clamp(Math.Round(c.R), 0, 255), (byte)Math.Clamp(Math.Round(c.G), 0, 255), (byte)Math.Clamp(Math.Round(c.B), 0, 255));
}
