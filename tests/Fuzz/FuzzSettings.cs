using System.Globalization;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// How much to fuzz. CI runs each family's own case count (about a minute for all families); DPEFT_FUZZ_SCALE multiplies
/// every count (e.g. 50 for an hour-long run) and DPEFT_FUZZ_SEED changes the seeds, so a longer or different run is the
/// same tests with other numbers: <c>DPEFT_FUZZ_SCALE=50 DPEFT_FUZZ_SEED=7 dotnet test --filter Category=Fuzz</c>.
/// </summary>
public static class FuzzSettings
{
    public const string ScaleVariable = "DPEFT_FUZZ_SCALE";
    public const string SeedVariable = "DPEFT_FUZZ_SEED";

    public static double Scale { get; } = Read(ScaleVariable, 1.0);
    public static int Seed { get; } = (int)Read(SeedVariable, 16);

    /// <summary>The number of cases for a family whose CI count is <paramref name="ciCases"/>.</summary>
    public static int Cases(int ciCases) => Math.Max(1, (int)Math.Round(ciCases * Scale));

    /// <summary>A family's own random stream: the same seed gives the same cases in every run.</summary>
    public static Random Random(string family) => new(HashCode.Combine(Seed, StableHash(family)));

    private static int StableHash(string s)
    {
        int h = 17;
        foreach (char c in s) h = unchecked(h * 31 + c);
        return h;
    }

    private static double Read(string name, double fallback)
    {
        var text = Environment.GetEnvironmentVariable(name);
        if (string.IsNullOrWhiteSpace(text)) return fallback;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 ? v
            : throw new ArgumentException($"{name}='{text}' is not a positive number");
    }
}
