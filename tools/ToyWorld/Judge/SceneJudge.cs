using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// Reads a 64x64 image back into the world's terms and scores it against a caption. Reading: fit the background
/// (<see cref="BackgroundFitter"/>), fit it again without the pixels that stand out, take what still stands out as
/// objects (<see cref="ObjectSegmenter"/>), and per object name the colour (median of the quarter of its pixels
/// farthest from the background, nearest palette colour), the size and position (soft bounding box: edge columns and rows count by their coverage) and the
/// shape (coverage resampled onto the shape templates' grid, best soft IoU). Coverage is the pixel's projection onto
/// the line from background to object colour, 1 inside the object.
/// </summary>
public static class SceneJudge
{
    /// <summary>A measured object colour this close to a palette colour is taken for it when measuring coverage.</summary>
    public const double PaletteSnapDistance = 80;

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
        var objects = components.Select((c, k) => ReadObject(image, model, residual, owner, k + 1, c)).ToList();
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
            found.Count);
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

    private static ObjectReading ReadObject(RgbImage image, BackgroundModel model, double[] residual, int[] owner, int id, int[] pixels)
    {
        int x0 = N, y0 = N, x1 = -1, y1 = -1;
        foreach (int i in pixels)
        {
            int x = i % N, y = i / N;
            x0 = Math.Min(x0, x); x1 = Math.Max(x1, x); y0 = Math.Min(y0, y); y1 = Math.Max(y1, y);
        }
        // The object's colour: the median of its quarter of pixels farthest from the background. Blur leaves thin parts
        // (a small ring's band) short of their colour, so the median of all pixels would wash it out towards the background.
        var core = pixels.OrderByDescending(i => residual[i]).Take(Math.Max(1, pixels.Length / 4)).ToArray();
        var measured = MedianColour(image, core);
        var colour = ToyPalette.Nearest(measured);
        // Coverage is measured against the named colour when the measured one is near it: a blurred thin band never
        // reaches its colour, and measuring against what it reached would overstate its coverage and area.
        var reference = measured.DistanceTo(ToyPalette.Of(colour)) < PaletteSnapDistance ? ToyPalette.Of(colour) : measured;

        // Coverage in the object's box grown by two pixels (blur spreads an edge that far); other objects count as
        // uncovered. Inside the object, a pixel that does not look like the object's colour (a subject's second colour)
        // counts by its distance from the background. The area sums the unclamped coverage, whose noise averages out.
        int wx0 = Math.Max(0, x0 - 2), wy0 = Math.Max(0, y0 - 2), wx1 = Math.Min(N - 1, x1 + 2), wy1 = Math.Min(N - 1, y1 + 2);
        int w = wx1 - wx0 + 1, h = wy1 - wy0 + 1;
        var alpha = new double[w * h];
        double area = 0;
        for (int y = wy0; y <= wy1; y++)
            for (int x = wx0; x <= wx1; x++)
            {
                int i = y * N + x;
                if (owner[i] != 0 && owner[i] != id) continue;
                var bg = model.ColourAt(x, y);
                double a = Coverage(image, i, bg, reference);
                if (owner[i] == id && a < 0.5) a = Math.Max(a, Math.Min(1, residual[i] / Math.Max(1, reference.DistanceTo(ToRgb(bg)))));
                area += a;
                alpha[(y - wy0) * w + x - wx0] = Math.Clamp(a, 0, 1);
            }
        var (left, right) = SoftEdges(alpha, w, h, columns: true, wx0);
        var (top, bottom) = SoftEdges(alpha, w, h, columns: false, wy0);
        double cx = (left + right) / 2, cy = (top + bottom) / 2, boxExtent = Math.Max(right - left, bottom - top);

        var (shape, scores, extent) = ShapeFit.Classify(alpha, w, h, wx0, wy0, cx, cy, boxExtent, area);

        return new ObjectReading(colour, shape, ToyGeometry.SizeOf(extent), ToyGeometry.PositionOf(cx, cy), measured,
            cx, cy, extent, pixels.Length, scores);
    }

    /// <summary>
    /// The object's extent along x (columns) or y (rows): per line the largest coverage, and the first and last lines
    /// whose coverage passes one half, moved outwards by the coverage of the lines beyond them and inwards by their own
    /// shortfall. Returns image coordinates (left edge, right edge).
    /// </summary>
    private static (double Low, double High) SoftEdges(double[] alpha, int w, int h, bool columns, int origin)
    {
        int lines = columns ? w : h, across = columns ? h : w;
        var profile = new double[lines];
        for (int l = 0; l < lines; l++)
            for (int a = 0; a < across; a++)
                profile[l] = Math.Max(profile[l], columns ? alpha[a * w + l] : alpha[l * w + a]);
        int first = Array.FindIndex(profile, p => p >= 0.5), last = Array.FindLastIndex(profile, p => p >= 0.5);
        if (first < 0) return (origin, origin + lines);
        double low = first + (1 - profile[first]) - (first > 0 ? profile[first - 1] : 0);
        double high = last + profile[last] + (last < lines - 1 ? profile[last + 1] : 0);
        return (origin + low, origin + high);
    }

    /// <summary>How far the pixel lies from the background colour towards the object colour (0 at the background, 1 at the object; clamped to [-0.5, 1.5]).</summary>
    private static double Coverage(RgbImage image, int i, (double R, double G, double B) bg, Rgb obj)
    {
        double ox = obj.R - bg.R, oy = obj.G - bg.G, oz = obj.B - bg.B;
        double len2 = ox * ox + oy * oy + oz * oz;
        if (len2 < 1) return 0;
        double px = image.Pixels[3 * i] - bg.R, py = image.Pixels[3 * i + 1] - bg.G, pz = image.Pixels[3 * i + 2] - bg.B;
        return Math.Clamp((px * ox + py * oy + pz * oz) / len2, -0.5, 1.5);
    }

    private static Rgb MedianColour(RgbImage image, int[] pixels)
    {
        byte Channel(int c)
        {
            var v = pixels.Select(i => image.Pixels[3 * i + c]).Order().ToArray();
            return v[v.Length / 2];
        }
        return new Rgb(Channel(0), Channel(1), Channel(2));
    }

    private static Rgb ToRgb((double R, double G, double B) c) =>
        new((byte)Math.Clamp(Math.Round(c.R), 0, 255), (byte)Math.Clamp(Math.Round(c.G), 0, 255), (byte)Math.Clamp(Math.Round(c.B), 0, 255));
}
