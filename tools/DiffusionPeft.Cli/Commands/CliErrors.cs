namespace DiffusionPeft.Cli.Commands;

/// <summary>Turns exceptions into one clear line and an exit code (2: bad input, 1: failure, 130: interrupted).</summary>
public static class CliErrors
{
    public static string Describe(Exception ex)
    {
        if (ex is System.Reflection.TargetInvocationException { InnerException: { } inner }) ex = inner;
        if (ex is AggregateException { InnerExceptions.Count: 1 } agg) ex = agg.InnerExceptions[0];
        if (IsDiskFull(ex)) return $"the disk is full: {OneLine(ex.Message)}";
        return OneLine(ex.Message);
    }

    /// <summary>A multi-line message (a list of faults, of mismatched tensors) as one line: "heading: a; b; c".</summary>
    public static string OneLine(string message)
    {
        var lines = message.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        if (lines.Count <= 1) return lines.FirstOrDefault() ?? "";
        var sb = new System.Text.StringBuilder(lines[0]);
        for (int i = 1; i < lines.Count; i++) sb.Append(lines[i - 1].EndsWith(':') ? " " : "; ").Append(lines[i]);
        return sb.ToString();
    }

    public static int ExitCode(Exception ex) => ex switch
    {
        OperationCanceledException => 130,
        ArgumentException or FormatException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or NotSupportedException => 2,
        // A file that cannot be used is bad input, although these are not InvalidDataExceptions (see the README's input contract).
        Core.Imaging.ImageDecodeException or Diffusion.IO.InvalidSafetensorsException or Diffusion.IO.StateDictMismatchException => 2,
        _ => 1,
    };

    private static bool IsDiskFull(Exception ex) => ex is IOException io && (io.HResult & 0xFFFF) == 28; // ENOSPC
}
