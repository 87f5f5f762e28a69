using DiffusionPeft.Core.IO;
using ScottPlot;
using SkiaSharp;

namespace DiffusionPeft.Experiments.AdapterMethods;

/// <summary>ScottPlot 5 panels composed into one PNG per figure (rows = target kind, columns = κ).</summary>
public static class Plots
{
    private static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"];
    private const string FontName = "DejaVu Sans";
    private const int CellWidth = 560, CellHeight = 420, HeaderHeight = 56, LegendWidth = 290;
    private static readonly object FontLock = new();
    private static bool _fontRegistered;

    public static void WriteAll(string dir, SweepConfig c, IReadOnlyList<MethodSpec> methods, SweepSummary s)
    {
        foreach (var task in c.Tasks)
        {
            string t = task.ToString().ToLowerInvariant();
            var rows = s.Rows.Where(r => r.Task == task).ToList();
            if (rows.Count == 0) continue;
            Figure(Path.Combine(dir, $"loss-curves-{t}.png"), $"{task}: relative eval loss vs step at each method's best learning rate (per panel, see results.md; median of {c.Seeds.Length} seed(s))",
                c, rows, methods, (p, cond) => LossCurves(p, c, cond));
            Figure(Path.Combine(dir, $"final-loss-vs-lr-{t}.png"), $"{task}: final relative loss after {c.Steps} steps vs learning rate (median over seeds; diverged runs drawn at the top)",
                c, rows, methods, (p, cond) => FinalVsLr(p, c, cond));
            Figure(Path.Combine(dir, $"grad-erank-{t}.png"), $"{task}: effective rank of the adapter gradients (mean of ∇A and ∇B; SingLoRA: ∇A) at the best LR, r = {c.AdapterRank}",
                c, rows, methods, (p, cond) => GradRank(p, c, cond));
        }
    }

    private static void Figure(string path, string header, SweepConfig c, List<ConditionRow> rows, IReadOnlyList<MethodSpec> methods,
                               Action<Plot, List<ConditionRow>> draw)
    {
        var kinds = rows.Select(r => r.Kind).Distinct().OrderBy(k => k).ToList();
        var kappas = rows.Select(r => r.Kappa).Distinct().OrderBy(k => k).ToList();
        var panels = new List<(int Row, int Col, Plot Plot)>();
        for (int i = 0; i < kinds.Count; i++)
            for (int j = 0; j < kappas.Count; j++)
            {
                var cond = rows.Where(r => r.Kind == kinds[i] && r.Kappa == kappas[j]).ToList();
                var p = NewPlot($"{KindLabel(kinds[i])} target, κ = {kappas[j]:0}");
                draw(p, cond.OrderBy(r => methods.ToList().FindIndex(m => m.Name == r.Method)).ToList());
                // Same methods and colours in every panel: one legend, outside the data, on the last column.
                if (j == kappas.Count - 1) p.ShowLegend(Edge.Right);
                else p.HideLegend();
                panels.Add((i, j, p));
            }
        Compose(path, header, panels, kinds.Count, kappas.Count);
    }

    private static void LossCurves(Plot p, SweepConfig c, List<ConditionRow> cond)
    {
        int i = 0;
        foreach (var r in cond)
        {
            var ys = r.CurveMedian.Select(v => Log10Clamped(v, c)).ToArray();
            var line = p.Add.ScatterLine(r.CurveSteps.Select(x => (double)x).ToArray(), ys);
            Style(line, i++, r.Method);
        }
        Threshold(p, c);
        LogY(p);
        p.XLabel("step", 15);
        p.YLabel("relative loss", 15);
    }

    private static void FinalVsLr(Plot p, SweepConfig c, List<ConditionRow> cond)
    {
        int i = 0;
        foreach (var r in cond)
        {
            var xs = r.Cells.Select(x => Math.Log10(x.LearningRate)).ToArray();
            var ys = r.Cells.Select(x => Log10Clamped(x.MedianFinal, c)).ToArray();
            var line = p.Add.Scatter(xs, ys);
            Style(line, i++, r.Method);
            line.MarkerSize = 8;
        }
        Threshold(p, c);
        LogY(p);
        p.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            c.LearningRates.Select(lr => new Tick(Math.Log10(lr), $"{lr:0.####}")).ToArray());
        p.XLabel("learning rate (LoRA+: of A; B gets λ×)", 15);
        p.YLabel("final relative loss", 15);
    }

    private static void GradRank(Plot p, SweepConfig c, List<ConditionRow> cond)
    {
        int i = 0;
        foreach (var r in cond)
        {
            // One line per method: the mean of erank(∇A) and erank(∇B) (SingLoRA: its one matrix); steps where every gradient is zero are skipped.
            var pts = r.RankSteps.Select((step, k) => (step, v: MeanFinite(r.ERankACurve[k], r.ERankBCurve[k]))).Where(t => double.IsFinite(t.v)).ToArray();
            var line = p.Add.ScatterLine(pts.Select(t => (double)t.step).ToArray(), pts.Select(t => t.v).ToArray());
            Style(line, i++, r.Method);
        }
        p.Axes.SetLimitsY(0.8, c.AdapterRank + 0.2);
        p.XLabel("step", 15);
        p.YLabel("effective rank of adapter gradients", 15);
    }

    private static double MeanFinite(double a, double b) =>
        double.IsFinite(a) && double.IsFinite(b) ? (a + b) / 2 : double.IsFinite(a) ? a : b;

    private static double Log10Clamped(double v, SweepConfig c) =>
        Math.Log10(double.IsFinite(v) ? Math.Clamp(v, 1e-13, c.DivergeAt) : c.DivergeAt);

    private static void Threshold(Plot p, SweepConfig c)
    {
        var h = p.Add.HorizontalLine(Math.Log10(c.Threshold));
        h.Color = Colors.Gray;
        h.LinePattern = LinePattern.Dotted;
        h.LineWidth = 1.5f;
    }

    private static void LogY(Plot p)
    {
        p.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            IntegerTicksOnly = true,
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            LabelFormatter = y => $"1e{y:0}",
        };
    }

    private static void Style(ScottPlot.Plottables.Scatter s, int i, string legend)
    {
        s.Color = Color.FromHex(Palette[i % Palette.Length]);
        s.LineWidth = 2;
        if (legend is not null) s.LegendText = legend;
    }

    private static string KindLabel(TargetKind k) => k == TargetKind.Psd ? "PSD (U S Uᵀ)" : "general (U S Vᵀ)";

    private static Plot NewPlot(string title)
    {
        EnsureFont();
        var p = new Plot();
        p.Font.Set(FontName);
        p.Title(title, 17);
        p.Legend.FontSize = 11;
        p.Legend.FontName = FontName;
        p.Axes.Bottom.TickLabelStyle.FontSize = 12;
        p.Axes.Left.TickLabelStyle.FontSize = 12;
        return p;
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

    private static void Compose(string path, string header, List<(int Row, int Col, Plot Plot)> panels, int rows, int cols)
    {
        int w = cols * CellWidth + LegendWidth, h = rows * CellHeight + HeaderHeight;
        using var surface = SKSurface.Create(new SKImageInfo(w, h));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using (var typeface = SKTypeface.FromFile("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf") ?? SKTypeface.Default)
        using (var font = new SKFont(typeface, 19))
        using (var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true })
            canvas.DrawText(header, 16, 36, SKTextAlign.Left, font, paint);
        foreach (var (r, c, plot) in panels)
        {
            // Plot.Render(canvas, rect) clears the whole canvas: render each panel to its own image and draw that.
            int width = CellWidth + (c == cols - 1 ? LegendWidth : 0);
            using var panel = SKImage.FromEncodedData(plot.GetImageBytes(width, CellHeight, ImageFormat.Png));
            canvas.DrawImage(panel, c * CellWidth, HeaderHeight + r * CellHeight);
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, data.AsSpan());
    }
}
