using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// Reads one segmented object: its colour (median of the quarter of its pixels farthest from the background, nearest
/// palette colour), a coverage map of its surroundings, its soft bounding box (edge columns and rows count by their
/// coverage) and from those its position, shape (<see cref="ShapeFit"/>) and size.
/// </summary>
public static class ObjectReader
{
    /// <summary>A measured object colour this close to a palette colour is taken for it when measuring coverage.</summary>
    public const double PaletteSnapDistance = 80;

    private const int N = ToyGeometry.ImageSize;

    /// <param name="owner">Per pixel the 1-based component it belongs to (0: background).</param>
    /// <param name="id">This object's component number; <paramref name="pixels"/> are its pixel indices.</param>
    public static ObjectReading Read(RgbImage image, BackgroundModel model, double[] residual, int[] owner, int id, int[] pixels)
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
                if (owner[i] == id && a < 0.5) a = Math.Max(a, Math.Min(1, residual[i] / Math.Max(1, reference.DistanceTo(SceneJudge.ToRgb(bg)))));
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
}
