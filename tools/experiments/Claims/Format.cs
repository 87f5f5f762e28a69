using System.Globalization;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>Number formatting for the reports (invariant culture).</summary>
public static class Format
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Sci(double v) =>
        double.IsPositiveInfinity(v) ? "∞" : double.IsNaN(v) ? "—" : v == 0 ? "0" : v.ToString("0.0e0", Inv);

    public static string Num(double v, string format = "0.00") => double.IsFinite(v) ? v.ToString(format, Inv) : double.IsPositiveInfinity(v) ? "∞" : "—";

    public static string Lr(double v) => v.ToString("0.####", Inv);

    /// <summary>"estimate [lower, upper]" in scientific notation.</summary>
    public static string SciInterval(Interval i) => i.N < 2 ? Sci(i.Estimate) : $"{Sci(i.Estimate)} [{Sci(i.Lower)}, {Sci(i.Upper)}]";

    public static string NumInterval(Interval i, string format = "0.00") =>
        i.N < 2 ? Num(i.Estimate, format) : $"{Num(i.Estimate, format)} [{Num(i.Lower, format)}, {Num(i.Upper, format)}]";

    /// <summary>Steps: a median with its bootstrap interval; ∞ (never reached within the budget) printed as "&gt; budget".</summary>
    public static string Steps(Interval i, int budget)
    {
        string S(double v) => double.IsPositiveInfinity(v) ? $">{budget}" : double.IsNaN(v) ? "—" : v.ToString("0", Inv);
        return i.N < 2 ? S(i.Estimate) : $"{S(i.Estimate)} [{S(i.Lower)}, {S(i.Upper)}]";
    }

    /// <summary>A JSON-safe number: null for NaN and ±∞.</summary>
    public static double? Json(double v) => double.IsFinite(v) ? v : null;

    public static object JsonInterval(Interval i) => new { estimate = Json(i.Estimate), lower = Json(i.Lower), upper = Json(i.Upper), n = i.N };
}
