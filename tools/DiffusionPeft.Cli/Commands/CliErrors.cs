namespace DiffusionPeft.Cli.Commands;

/// <summary>Turns exceptions into one clear message and an exit code (2: bad input, 1: failure, 130: interrupted).</summary>
public static class CliErrors
{
    public static string Describe(Exception ex)
    {
        if (ex is System.Reflection.TargetInvocationException { InnerException: { } inner }) ex = inner;
        if (ex is AggregateException { InnerExceptions.Count: 1 } agg) ex = agg.InnerExceptions[0];
        if (IsDiskFull(ex)) return $"the disk is full: {ex.Message}";
        return ex.Message;
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
