namespace DiffusionPeft.Benchmarks;

/// <summary>The benchmarks' "--name value" options.</summary>
public static class CliArgs
{
    public static string Value(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    public static int Int(string[] args, string name, int fallback) =>
        int.Parse(Value(args, name, fallback.ToString(System.Globalization.CultureInfo.InvariantCulture)), System.Globalization.CultureInfo.InvariantCulture);
}
