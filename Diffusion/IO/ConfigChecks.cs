using System.Globalization;

namespace DiffusionPeft.Diffusion.IO;

/// <summary>
/// Collects what is wrong with a model config's values, by config key, and throws one
/// <see cref="InvalidDataException"/> naming the file and every fault. The upper bounds are far above any real model
/// and keep size arithmetic away from overflow; whether the sizes match the weights is checked separately
/// (<see cref="ModelSize"/>), before anything is allocated.
/// </summary>
public sealed class ConfigChecks(string source)
{
    /// <summary>Channel counts, widths and embedding sizes.</summary>
    public const int MaxWidth = 1 << 16;
    /// <summary>Blocks, layers per block, transformer depths.</summary>
    public const int MaxDepth = 256;

    private readonly List<string> _faults = [];

    public string Source { get; } = source;

    public void Require(bool ok, string key, string fault)
    {
        if (!ok) _faults.Add($"'{key}' {fault}");
    }

    public void InRange(string key, long value, long min, long max) =>
        Require(value >= min && value <= max, key, $"must be in {min}..{max} (got {value.ToString(CultureInfo.InvariantCulture)})");

    public void InRange(string key, IEnumerable<int> values, long min, long max)
    {
        foreach (var v in values)
            if (v < min || v > max) { InRange(key, v, min, max); return; }
    }

    public void Finite(string key, double value, double min = double.NegativeInfinity, double max = double.PositiveInfinity, bool minExclusive = false)
    {
        bool ok = double.IsFinite(value) && (minExclusive ? value > min : value >= min) && value <= max;
        string range = double.IsNegativeInfinity(min) && double.IsPositiveInfinity(max) ? "finite"
            : double.IsPositiveInfinity(max) ? $"finite and {(minExclusive ? ">" : ">=")} {Fmt(min)}" : $"in {Fmt(min)}..{Fmt(max)}";
        Require(ok, key, $"must be {range} (got {Fmt(value)})");
    }

    public void ThrowIfAny()
    {
        if (_faults.Count == 0) return;
        throw new InvalidDataException($"{Source}: invalid config: {string.Join("; ", _faults)}.");
    }

    private static string Fmt(double d) => d.ToString("R", CultureInfo.InvariantCulture);
}
