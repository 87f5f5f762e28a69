namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// The intervals the reports use, all at 95% over seeds: Student-t for means (and for geometric means, on log10),
/// percentile bootstrap for medians (so censored values, +∞ for "never reached", are handled: a bound is +∞ when
/// more than 2.5% of the resampled medians are). Bootstrap resampling uses a fixed seed, so reports are reproducible.
/// </summary>
public static class ConfidenceIntervals
{
    public const int BootstrapResamples = 4000;

    // Two-sided 95%: t quantile 0.975 for df = 1..30; beyond, the normal quantile.
    private static readonly double[] T975 =
    [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];

    public static double TQuantile975(int df) =>
        df < 1 ? double.NaN : df <= T975.Length ? T975[df - 1] : 1.960;

    /// <summary>Wilson's 95% score interval for a proportion of <paramref name="successes"/> in <paramref name="n"/> trials.</summary>
    public static Interval Wilson(int successes, int n)
    {
        if (n == 0) return Interval.Empty;
        const double z = 1.959964;
        double p = successes / (double)n, d = 1 + z * z / n;
        double centre = (p + z * z / (2 * n)) / d, half = z * Math.Sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / d;
        return new Interval(p, centre - half, centre + half, n);
    }

    /// <summary>Mean ± t_{0.975, n−1} · sd / √n. Non-finite values make the estimate non-finite.</summary>
    public static Interval MeanT(IReadOnlyList<double> xs)
    {
        int n = xs.Count;
        if (n == 0) return Interval.Empty;
        double mean = xs.Average();
        if (n < 2 || !double.IsFinite(mean)) return new Interval(mean, double.NaN, double.NaN, n);
        double sd = Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (n - 1));
        double half = TQuantile975(n - 1) * sd / Math.Sqrt(n);
        return new Interval(mean, mean - half, mean + half, n);
    }

    /// <summary>Geometric mean with the t-interval computed on log10 (for positive quantities such as losses).</summary>
    public static Interval GeoMeanT(IReadOnlyList<double> xs)
    {
        if (xs.Any(x => !(x > 0))) return new Interval(double.NaN, double.NaN, double.NaN, xs.Count);
        var log = MeanT(xs.Select(Math.Log10).ToList());
        return new Interval(Math.Pow(10, log.Estimate), Math.Pow(10, log.Lower), Math.Pow(10, log.Upper), log.N);
    }

    /// <summary>Median with the 2.5/97.5 percentiles of the medians of <see cref="BootstrapResamples"/> resamples.</summary>
    public static Interval MedianBootstrap(IReadOnlyList<double> xs, int seed = 20240)
    {
        int n = xs.Count;
        if (n == 0) return Interval.Empty;
        double median = Median(xs);
        if (n < 2) return new Interval(median, double.NaN, double.NaN, n);
        var rng = new Random(seed);
        var medians = new double[BootstrapResamples];
        var sample = new double[n];
        for (int b = 0; b < BootstrapResamples; b++)
        {
            for (int i = 0; i < n; i++) sample[i] = xs[rng.Next(n)];
            medians[b] = Median(sample);
        }
        Array.Sort(medians);
        return new Interval(median, Percentile(medians, 0.025), Percentile(medians, 0.975), n);
    }

    /// <summary>The median; NaN for no values; +∞ values sort last.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        if (v.Length == 0) return double.NaN;
        return v.Length % 2 == 1 ? v[v.Length / 2] : Mid(v[v.Length / 2 - 1], v[v.Length / 2]);
    }

    private static double Mid(double a, double b) => double.IsPositiveInfinity(b) ? (double.IsPositiveInfinity(a) ? a : b) : (a + b) / 2;

    /// <summary>Linear interpolation between order statistics of a sorted array (type 7, as numpy's default).</summary>
    public static double Percentile(double[] sorted, double q)
    {
        double h = (sorted.Length - 1) * q;
        int lo = (int)Math.Floor(h), hi = (int)Math.Ceiling(h);
        if (lo == hi) return sorted[lo];
        if (double.IsInfinity(sorted[hi]) || double.IsInfinity(sorted[lo])) return sorted[hi];
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }
}
