namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// The process's peak resident memory since the last <see cref="Reset"/> (Linux: VmHWM, reset by writing 5 to
/// /proc/self/clear_refs). Catches native allocations (libtorch, Skia) that the GC does not see. Tests run one
/// collection at a time (xunit.runner.json), so a case's peak is its own plus what the process already held.
/// </summary>
public static class PeakMemory
{
    private static bool? _supported;

    public static bool Supported => _supported ??= Probe();

    public static void Reset()
    {
        if (Supported) File.WriteAllText("/proc/self/clear_refs", "5");
    }

    /// <summary>Peak resident bytes since the last reset, or 0 where it cannot be read.</summary>
    public static long Peak() => Read("VmHWM:");

    public static long Current() => Read("VmRSS:");

    private static long Read(string field)
    {
        if (!Supported) return 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line[field.Length..].Trim().Split(' ')[0]) * 1024;
        return 0;
    }

    private static bool Probe()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return File.ReadLines("/proc/self/status").Any(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }
}
