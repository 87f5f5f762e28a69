using System.Globalization;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>
/// The timesteps at which classifier-free guidance is applied (Kynkäänniemi et al. 2024, "Applying Guidance in a Limited
/// Interval Improves Sample and Distribution Quality in Diffusion Models"): guidance at the highest noise levels pulls
/// every sample toward one template of the prompt; outside the interval the conditional prediction is used alone.
/// Bounds are training timesteps (0 = clean, 999 = pure noise), inclusive.
/// </summary>
public sealed record GuidanceInterval(double Low, double High)
{
    public static GuidanceInterval Always { get; } = new(double.NegativeInfinity, double.PositiveInfinity);

    public bool IsAlways => double.IsNegativeInfinity(Low) && double.IsPositiveInfinity(High);

    public bool Contains(double timestep) => timestep >= Low && timestep <= High;

    /// <summary>"LO,HI" (e.g. "0,600"), or "always" (what <see cref="ToString"/> writes for <see cref="Always"/>); throws a message naming the fault.</summary>
    public static GuidanceInterval Parse(string text)
    {
        if (string.Equals(text.Trim(), "always", StringComparison.OrdinalIgnoreCase)) return Always;
        var parts = text.Split(',');
        if (parts.Length != 2 || !double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double lo)
            || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double hi))
            throw new FormatException($"guidance interval must be LO,HI in timesteps (e.g. 0,600) or always, got '{text}'");
        if (double.IsNaN(lo) || double.IsNaN(hi) || lo > hi)
            throw new FormatException($"guidance interval '{text}': LO must not exceed HI");
        return new GuidanceInterval(lo, hi);
    }

    public override string ToString() => IsAlways ? "always" : string.Create(CultureInfo.InvariantCulture, $"{Low},{High}");
}
