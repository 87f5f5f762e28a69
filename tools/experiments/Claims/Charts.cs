using DiffusionPeft.Core.IO;
using ScottPlot;
using SkiaSharp;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// ScottPlot 5 panels (points with 95% interval bars, optionally on log axes) composed into one PNG per figure.
/// Values that are +∞ (never reached, diverged) are drawn at the panel's cap, as hollow markers.
/// </summary>
public static class Charts
{
    public sealed record Series(string Name, IReadOnlyList<(double X, Interval Y)> Points);

    private static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"];
    private const string FontName = "DejaVu Sans";
    private const int CellWidth = 620, CellHeight = 440, HeaderHeight = 56;
    private static readonly object FontLock = new();
    private static bool _fontRegistered;

    /// <summary>One panel. With <paramref name="cap"/>, +∞ values (and bounds) are drawn at cap.</summary>
    public static Plot Panel(string title, IReadOnlyList<Series> series, string xLabel, string yLabel, bool logX, bool logY,
                             double? cap = null, IReadOnlyList<double>? xTicks = null, double? hLine = null)
    {
        EnsureFont();
        var p = new Plot();
        p.Font.Set(FontName);
        p.Title(title, 15);
        p.Legend.FontSize = 11;
        p.Legend.FontName = FontName;
        double X(double x) => logX ? Math.Log10(x) : x;
        double Y(double y)
        {
            if (double.IsPositiveInfinity(y) && cap is double c) y = c;
            return logY ? Math.Log10(Math.Max(y, 1e-300)) : y;
        }
        for (int i = 0; i < series.Count; i++)
        {
            var pts = series[i].Points.Where(pt => !double.IsNaN(pt.Y.Estimate)).ToList();
            if (pts.Count == 0) continue;
            var color = Color.FromHex(Palette[i % Palette.Length]);
            double[] xs = pts.Select(pt => X(pt.X) + (i - (series.Count - 1) / 2.0) * (logX ? 0.012 : 0)).ToArray();
            double[] ys = pts.Select(pt => Y(pt.Y.Estimate)).ToArray();
            var line = p.Add.Scatter(xs, ys);
            line.Color = color;
            line.LineWidth = 2;
            line.MarkerSize = 8;
            line.LegendText = series[i].Name;
            var bars = pts.Select((pt, k) => (k, lo: pt.Y.Lower, hi: pt.Y.Upper)).Where(b => !double.IsNaN(b.lo) && !double.IsNaN(b.hi)).ToList();
            if (bars.Count > 0)
            {
                var bx = bars.Select(b => xs[b.k]).ToArray();
                var by = bars.Select(b => ys[b.k]).ToArray();
                var neg = bars.Select(b => by[bars.IndexOf(b)] - Y(b.lo)).Select(v => Math.Max(v, 0)).ToArray();
                var pos = bars.Select(b => Y(b.hi) - by[bars.IndexOf(b)]).Select(v => Math.Max(v, 0)).ToArray();
                var eb = new ScottPlot.Plottables.ErrorBar(bx, by, null, null, neg, pos) { Color = color };
                p.Add.Plottable(eb);
            }
            var censored = pts.Select((pt, k) => (pt, k)).Where(t => double.IsPositiveInfinity(t.pt.Y.Estimate)).ToList();
            foreach (var (_, k) in censored)
            {
                var m = p.Add.Marker(xs[k], ys[k]);
                m.Shape = MarkerShape.OpenCircle;
                m.Size = 16;
                m.Color = color;
            }
        }
        if (cap is double capValue)
        {
            var h = p.Add.HorizontalLine(Y(capValue));
            h.Color = Colors.Gray;
            h.LinePattern = LinePattern.Dotted;
        }
        if (hLine is double hv)
        {
            var h = p.Add.HorizontalLine(Y(hv));
            h.Color = Colors.Black;
            h.LinePattern = LinePattern.Dashed;
        }
        if (logY) p.Axes.Left.TickGenerator = LogTicks();
        if (xTicks is not null)
            p.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(xTicks.Select(t => new Tick(X(t), t.ToString("G4", System.Globalization.CultureInfo.InvariantCulture))).ToArray());
        else if (logX) p.Axes.Bottom.TickGenerator = LogTicks();
        p.XLabel(xLabel, 13);
        p.YLabel(yLabel, 13);
        p.ShowLegend(Edge.Bottom);
        return p;
    }

    private static ScottPlot.TickGenerators.NumericAutomatic LogTicks() => new()
    {
        IntegerTicksOnly = true,
        MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
        LabelFormatter = v => $"1e{v:0}",
    };

    /// <summary>Panels in a grid of <paramref name="columns"/>, under a header line.</summary>
    public static void Grid(string path, string header, IReadOnlyList<Plot> panels, int columns)
    {
        int rows = (panels.Count + columns - 1) / columns;
        int w = columns * CellWidth, h = rows * CellHeight + HeaderHeight;
        using var surface = SKSurface.Create(new SKImageInfo(w, h));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using (var typeface = SKTypeface.FromFile("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf") ?? SKTypeface.Default)
        using (var font = new SKFont(typeface, 18))
        using (var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true })
            canvas.DrawText(header, 16, 36, SKTextAlign.Left, font, paint);
        for (int i = 0; i < panels.Count; i++)
        {
            // Plot.Render(canvas, rect) clears the whole canvas: render each panel to its own image and draw that.
            using var panel = SKImage.FromEncodedData(panels[i].GetImageBytes(CellWidth, CellHeight, ImageFormat.Png));
            canvas.DrawImage(panel, i % columns * CellWidth, HeaderHeight + i / columns * CellHeight);
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, data.AsSpan());
    }

    private static void EnsureFont()
    {
        lock (FontLock)
        {
            if (_fontRegistered) return;
            const string dir = "/usr/share/fonts/truetype/dejavu";
            if (File.Exists(Path.Combine(dir, "DejaVuSans.ttf")))
            {
                Fonts.AddFontFile(FontName, Path.Combine(dir, "DejaVuSans.ttf"));
                if (File.Exists(Path.Combine(dir, "DejaVuSans-Bold.ttf")))
                    Fonts.AddFontFile(FontName, Path.Combine(dir, "DejaVuSans-Bold.ttf"), bold: true);
            }
            _fontRegistered = true;
        }
    }
}
