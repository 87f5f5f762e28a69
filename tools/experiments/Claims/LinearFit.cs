namespace DiffusionPeft.Experiments.Claims;

/// <summary>Ordinary least squares y = a + b x.</summary>
public static class LinearFit
{
    public static (double Slope, double Intercept) Ols(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count || x.Count < 2) return (double.NaN, double.NaN);
        double mx = x.Average(), my = y.Average();
        double sxx = 0, sxy = 0;
        for (int i = 0; i < x.Count; i++)
        {
            sxx += (x[i] - mx) * (x[i] - mx);
            sxy += (x[i] - mx) * (y[i] - my);
        }
        double b = sxx > 0 ? sxy / sxx : double.NaN;
        return (b, my - b * mx);
    }
}
