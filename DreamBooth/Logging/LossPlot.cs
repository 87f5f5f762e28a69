using DiffusionPeft.Core.IO;

namespace DiffusionPeft.DreamBooth.Logging;

/// <summary>RUN/loss.png: raw loss per step and its exponential moving average, rewritten atomically (ScottPlot 5, headless).</summary>
public static class LossPlot
{
    public const string FileName = "loss.png";

    /// <summary>EMA with bias correction (as TensorBoard's smoothing), so the first points are not pulled to 0.</summary>
    public static double[] Smooth(IReadOnlyList<double> values, double beta = 0.9)
    {
        var result = new double[values.Count];
        double ema = 0, weight = 0;
        for (int i = 0; i < values.Count; i++)
        {
            if (!double.IsFinite(values[i])) { result[i] = i > 0 ? result[i - 1] : double.NaN; continue; }
            ema = beta * ema + (1 - beta) * values[i];
            weight = beta * weight + (1 - beta);
            result[i] = ema / weight;
        }
        return result;
    }

    public static void Write(string path, IReadOnlyList<(long Step, double Loss)> points, int width = 900, int height = 500)
    {
        var xs = points.Select(p => (double)p.Step).ToArray();
        var ys = points.Select(p => p.Loss).ToArray();
        var plot = new ScottPlot.Plot();
        if (xs.Length > 0)
        {
            var raw = plot.Add.ScatterLine(xs, ys);
            raw.LegendText = "loss";
            raw.Color = ScottPlot.Colors.SteelBlue.WithAlpha(0.35);
            var smooth = plot.Add.ScatterLine(xs, Smooth(ys));
            smooth.LegendText = "EMA 0.9";
            smooth.Color = ScottPlot.Colors.OrangeRed;
            smooth.LineWidth = 2;
            plot.ShowLegend();
        }
        plot.Title("training loss");
        plot.XLabel("step");
        plot.YLabel("loss");
        var png = plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, png);
    }
}
