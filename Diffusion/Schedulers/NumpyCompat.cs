namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// The few numpy float64 routines diffusers uses to build schedules, reproduced operation for operation so
/// timesteps round the same way (np.round is round-half-to-even).
/// </summary>
internal static class NumpyCompat
{
    /// <summary>np.linspace(start, stop, num): i * step + start, last element exactly stop.</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        if (num <= 0) return [];
        if (num == 1) return [start];
        double step = (stop - start) / (num - 1);
        var y = new double[num];
        for (int i = 0; i < num; i++) y[i] = i * step + start;
        y[^1] = stop;
        return y;
    }

    /// <summary>np.arange(start, stop, step) for floats: start + i * delta with delta = (start + step) - start.</summary>
    public static double[] Arange(double start, double stop, double step)
    {
        long len = (long)Math.Ceiling((stop - start) / step);
        if (len <= 0) return [];
        double delta = (start + step) - start;
        var y = new double[len];
        for (long i = 0; i < len; i++) y[i] = start + i * delta;
        return y;
    }

    public static double Round(double x) => Math.Round(x, MidpointRounding.ToEven);

    public static double[] Round(double[] x) => x.Select(Round).ToArray();

    public static double[] Reversed(double[] x) { var r = (double[])x.Clone(); Array.Reverse(r); return r; }

    /// <summary>np.interp(x, arange(len(fp)), fp).</summary>
    public static double[] InterpOnIndex(double[] x, float[] fp)
    {
        var r = new double[x.Length];
        int last = fp.Length - 1;
        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            if (double.IsNaN(v)) { r[i] = double.NaN; continue; }
            if (v <= 0) { r[i] = fp[0]; continue; }
            if (v >= last) { r[i] = fp[last]; continue; }
            int j = (int)Math.Floor(v);
            if (j == v) { r[i] = fp[j]; continue; }
            double slope = ((double)fp[j + 1] - fp[j]) / 1.0;
            r[i] = slope * (v - j) + fp[j];
        }
        return r;
    }
}
