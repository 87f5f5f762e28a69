namespace DiffusionPeft.Experiments.Claims;

/// <summary>A point estimate with a 95% confidence interval over N independent seeds (bounds NaN when N &lt; 2).</summary>
public sealed record Interval(double Estimate, double Lower, double Upper, int N)
{
    public static Interval Empty { get; } = new(double.NaN, double.NaN, double.NaN, 0);
}
