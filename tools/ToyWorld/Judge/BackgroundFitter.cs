using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// Fits the world's background families to an image, robustly to the objects on it: plain (per-channel median),
/// gradients along x or y (per-line medians, then a line fit that drops outlying lines), stripes and checks
/// (per-class medians). The layout of stripes and checks comes from the edge profiles: the summed colour change
/// between neighbouring columns (rows) peaks every stripe width or cell, whatever the objects do, so the best
/// width in <see cref="StripeWidths"/> (cell in <see cref="CheckCells"/>) and phase are the ones whose edge lines
/// carry the most change. Each family's fit is scored by its truncated squared residual, so object pixels cost
/// every model the same; a two-colour model needs a contrast of at least <see cref="MinContrast"/>, else it is
/// plain. Pixels marked in the exclusion mask (objects found by a first pass) are left out of the fit.
/// </summary>
public static class BackgroundFitter
{
    public const double Truncation = 40, MinContrast = 40;
    /// <summary>Stripe widths and check cells tried: the world's, and one pixel either side for generated images.</summary>
    public static readonly int[] StripeWidths = [SceneBackground.StripeWidth - 1, SceneBackground.StripeWidth, SceneBackground.StripeWidth + 1];
    public static readonly int[] CheckCells = [SceneBackground.CheckSize - 1, SceneBackground.CheckSize, SceneBackground.CheckSize + 1];

    private const int N = ToyGeometry.ImageSize;

    public static BackgroundModel Fit(RgbImage image, bool[]? exclude = null)
    {
        var px = Pixels.Of(image);
        var best = FitPlain(px, exclude);
        var hist = new int[2 * 3 * 256];
        var columnEdges = EdgeProfile(px, columns: true);
        var rowEdges = EdgeProfile(px, columns: false);
        foreach (var axis in new[] { PatternAxis.X, PatternAxis.Y })
        {
            best = Better(best, FitGradient(px, exclude, axis));
            var (width, phase) = BestLayout(axis == PatternAxis.X ? columnEdges : rowEdges, StripeWidths);
            best = Better(best, axis == PatternAxis.X
                ? FitClasses(px, exclude, hist, BackgroundTexture.Striped, axis, 2 * width, phase, 0)
                : FitClasses(px, exclude, hist, BackgroundTexture.Striped, axis, 2 * width, 0, phase));
        }
        foreach (var cell in CheckCells)
        {
            var (_, phaseX) = BestLayout(columnEdges, [cell]);
            var (_, phaseY) = BestLayout(rowEdges, [cell]);
            best = Better(best, FitClasses(px, exclude, hist, BackgroundTexture.Checked, PatternAxis.X, cell, phaseX, phaseY));
        }
        return best;
    }

    /// <summary>
    /// edges[t]: the summed absolute colour change between line t − 1 and line t (t = 1..63). The layout (spacing,
    /// phase) whose edge lines t, with (t + phase) mod spacing = 0, have the largest mean change.
    /// </summary>
    private static (int Spacing, int Phase) BestLayout(double[] edges, int[] spacings)
    {
        (int, int) best = (spacings[0], 0);
        double bestMean = double.MinValue;
        foreach (int spacing in spacings)
            for (int phase = 0; phase < spacing; phase++)
            {
                double sum = 0;
                int n = 0;
                for (int t = 1; t < N; t++)
                    if ((t + phase) % spacing == 0) { sum += edges[t]; n++; }
                if (n > 0 && sum / n > bestMean) (bestMean, best) = (sum / n, (spacing, phase));
            }
        return best;
    }

    private static double[] EdgeProfile(Pixels px, bool columns)
    {
        var edges = new double[N];
        for (int t = 1; t < N; t++)
        {
            double sum = 0;
            for (int s = 0; s < N; s++)
            {
                int i = columns ? s * N + t : t * N + s, j = columns ? i - 1 : i - N;
                sum += Math.Abs(px.R[i] - px.R[j]) + Math.Abs(px.G[i] - px.G[j]) + Math.Abs(px.B[i] - px.B[j]);
            }
            edges[t] = sum;
        }
        return edges;
    }

    /// <summary>The same layout as <paramref name="model"/> with its colours fitted again, leaving out <paramref name="exclude"/>.</summary>
    public static BackgroundModel Refit(RgbImage image, BackgroundModel model, bool[] exclude)
    {
        var px = Pixels.Of(image);
        return model.Texture switch
        {
            BackgroundTexture.Plain => FitPlain(px, exclude),
            BackgroundTexture.Gradient => FitGradient(px, exclude, model.Axis),
            _ => FitClasses(px, exclude, new int[2 * 3 * 256], model.Texture, model.Axis, model.Period, model.PhaseX, model.PhaseY),
        };
    }

    private static BackgroundModel Better(BackgroundModel best, BackgroundModel candidate) =>
        candidate.Texture != BackgroundTexture.Plain && candidate.Contrast < MinContrast ? best
            : candidate.Cost < best.Cost ? candidate : best;

    private static BackgroundModel FitPlain(Pixels px, bool[]? exclude)
    {
        var hist = new int[3 * 256];
        int n = 0;
        for (int i = 0; i < N * N; i++)
        {
            if (exclude is not null && exclude[i]) continue;
            hist[px.R[i]]++; hist[256 + px.G[i]]++; hist[512 + px.B[i]]++;
            n++;
        }
        var c = n == 0 ? (0.0, 0.0, 0.0) : (Median(hist, 0, n), Median(hist, 256, n), Median(hist, 512, n));
        var model = new BackgroundModel(BackgroundTexture.Plain, PatternAxis.X, 0, 0, 0, c, c, 0);
        return model with { Cost = Cost(px, model) };
    }

    private static BackgroundModel FitGradient(Pixels px, bool[]? exclude, PatternAxis axis)
    {
        // Per-line medians, then per-channel least squares over the lines, refitted twice without lines far off.
        var lines = new List<(int T, double R, double G, double B)>();
        var hist = new int[3 * 256];
        for (int t = 0; t < N; t++)
        {
            Array.Clear(hist);
            int n = 0;
            for (int s = 0; s < N; s++)
            {
                int i = axis == PatternAxis.Y ? t * N + s : s * N + t;
                if (exclude?[i] == true) continue;
                hist[px.R[i]]++; hist[256 + px.G[i]]++; hist[512 + px.B[i]]++;
                n++;
            }
            if (n >= 8) lines.Add((t, Median(hist, 0, n), Median(hist, 256, n), Median(hist, 512, n)));
        }
        if (lines.Count < 2) return new BackgroundModel(BackgroundTexture.Gradient, axis, 0, 0, 0, default, default, double.MaxValue);
        var used = lines;
        (double R, double G, double B) a = default, b = default;
        for (int round = 0; round < 3; round++)
        {
            (a, b) = FitLine(used);
            var (fa, fb) = (a, b);
            var kept = lines.Where(l => Distance(l, Along(fa, fb, l.T)) < Truncation / 2).ToList();
            if (kept.Count < lines.Count / 3) break;
            used = kept;
        }
        var model = new BackgroundModel(BackgroundTexture.Gradient, axis, 0, 0, 0, a, b, 0);
        return model with { Cost = Cost(px, model) };
    }

    private static ((double, double, double) A, (double, double, double) B) FitLine(List<(int T, double R, double G, double B)> lines)
    {
        double last = N - 1, n = lines.Count;
        double st = 0, stt = 0, sr = 0, sg = 0, sb = 0, str = 0, stg = 0, stb = 0;
        foreach (var l in lines)
        {
            double t = l.T / last;
            st += t; stt += t * t; sr += l.R; sg += l.G; sb += l.B; str += t * l.R; stg += t * l.G; stb += t * l.B;
        }
        double den = n * stt - st * st;
        (double a, double b) Solve(double s, double ts) => den == 0 ? (s / n, s / n) : Ends((stt * s - st * ts) / den, (n * ts - st * s) / den);
        static (double, double) Ends(double intercept, double slope) => (intercept, intercept + slope);
        var (ar, br) = Solve(sr, str);
        var (ag, bg) = Solve(sg, stg);
        var (ab, bb) = Solve(sb, stb);
        return ((ar, ag, ab), (br, bg, bb));
    }

    private static (double R, double G, double B) Along((double R, double G, double B) a, (double R, double G, double B) b, int t)
    {
        double u = t / (double)(N - 1);
        return (a.R + u * (b.R - a.R), a.G + u * (b.G - a.G), a.B + u * (b.B - a.B));
    }

    private static double Distance((int T, double R, double G, double B) l, (double R, double G, double B) c) =>
        Math.Sqrt((l.R - c.R) * (l.R - c.R) + (l.G - c.G) * (l.G - c.G) + (l.B - c.B) * (l.B - c.B));

    private static BackgroundModel FitClasses(Pixels px, bool[]? exclude, int[] hist, BackgroundTexture texture, PatternAxis axis,
        int period, int phaseX, int phaseY)
    {
        var classes = new byte[N * N];
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++)
                classes[y * N + x] = (byte)BackgroundModel.ClassAt(texture, axis, period, phaseX, phaseY, x, y);
        Array.Clear(hist);
        int n0 = 0, n1 = 0;
        for (int i = 0; i < N * N; i++)
        {
            if (exclude is not null && exclude[i]) continue;
            int k = classes[i], o = k * 768;
            hist[o + px.R[i]]++; hist[o + 256 + px.G[i]]++; hist[o + 512 + px.B[i]]++;
            if (k == 0) n0++; else n1++;
        }
        if (n0 == 0 || n1 == 0) return new BackgroundModel(texture, axis, period, phaseX, phaseY, default, default, double.MaxValue);
        var c0 = (Median(hist, 0, n0), Median(hist, 256, n0), Median(hist, 512, n0));
        var c1 = (Median(hist, 768, n1), Median(hist, 1024, n1), Median(hist, 1280, n1));
        var model = new BackgroundModel(texture, axis, period, phaseX, phaseY, c0, c1, 0);
        return model with { Cost = Cost(px, model) };
    }

    private static double Cost(Pixels px, BackgroundModel model)
    {
        const float cap = (float)(Truncation * Truncation);
        var (r, g, b) = model.Predict();
        double cost = 0;
        for (int i = 0; i < N * N; i++)
        {
            float dr = px.R[i] - r[i], dg = px.G[i] - g[i], db = px.B[i] - b[i];
            cost += Math.Min(dr * dr + dg * dg + db * db, cap);
        }
        return cost;
    }

    /// <summary>The median of the n values counted in hist[offset .. offset + 256).</summary>
    private static double Median(int[] hist, int offset, int n)
    {
        int half = (n + 1) / 2, seen = 0;
        for (int v = 0; v < 256; v++)
        {
            seen += hist[offset + v];
            if (seen >= half) return v;
        }
        return 255;
    }

    /// <summary>The image's channels as separate arrays.</summary>
    internal sealed class Pixels
    {
        public readonly byte[] R = new byte[N * N], G = new byte[N * N], B = new byte[N * N];

        public static Pixels Of(RgbImage image)
        {
            if (image.Width != N || image.Height != N)
                throw new ArgumentException($"the scene judge reads {N}x{N} images, got {image.Width}x{image.Height}", nameof(image));
            var p = new Pixels();
            for (int i = 0; i < N * N; i++)
            {
                p.R[i] = image.Pixels[3 * i];
                p.G[i] = image.Pixels[3 * i + 1];
                p.B[i] = image.Pixels[3 * i + 2];
            }
            return p;
        }
    }
}
