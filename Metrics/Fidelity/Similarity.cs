namespace DiffusionPeft.Metrics;

/// <summary>Cosine similarity of L2-normalised embeddings, in double (plain cosine in [-1, 1], not CLIPScore's 100·max(cos, 0)).</summary>
public static class Similarity
{
    public static double[] Normalized(ReadOnlySpan<float> v)
    {
        double ss = 0;
        foreach (var x in v) ss += (double)x * x;
        double inv = ss > 0 ? 1.0 / Math.Sqrt(ss) : throw new ArgumentException("cannot normalise a zero embedding");
        var r = new double[v.Length];
        for (int i = 0; i < v.Length; i++) r[i] = v[i] * inv;
        return r;
    }

    public static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"embedding widths differ: {a.Length} vs {b.Length}");
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => Dot(Normalized(a), Normalized(b));

    /// <summary>[rows.Count, cols.Count] cosine similarities.</summary>
    public static double[,] Matrix(IReadOnlyList<float[]> rows, IReadOnlyList<float[]> cols)
    {
        var nr = rows.Select(r => Normalized(r)).ToArray();
        var nc = cols.Select(c => Normalized(c)).ToArray();
        var m = new double[nr.Length, nc.Length];
        for (int i = 0; i < nr.Length; i++)
            for (int j = 0; j < nc.Length; j++) m[i, j] = Dot(nr[i], nc[j]);
        return m;
    }
}

/// <summary>Mean ± standard deviation (population, ddof = 0) over Count values.</summary>
public sealed record Stat(double Mean, double Std, int Count)
{
    public static readonly Stat Empty = new(double.NaN, double.NaN, 0);

    public static Stat Of(IEnumerable<double> values)
    {
        var v = values.Where(x => !double.IsNaN(x)).ToArray();
        if (v.Length == 0) return Empty;
        double mean = v.Average();
        double var = v.Sum(x => (x - mean) * (x - mean)) / v.Length;
        return new Stat(mean, Math.Sqrt(var), v.Length);
    }

    public override string ToString() => Count == 0 ? "n/a" : $"{Mean:F4} ± {Std:F4} (n={Count})";
}
