using System.Runtime.InteropServices;

namespace DiffusionPeft.Cli.ConsoleUi;

/// <summary>
/// Ctrl-C (SIGINT) or SIGTERM for a long command: the first one cancels <see cref="Token"/> (the command finishes
/// cleanly, e.g. saves a checkpoint) and prints what happens next, instead of killing the process; a second one
/// kills it as usual (exit 143 for SIGTERM). SIGTERM is how Slurm, Kubernetes, systemd and `timeout` stop a job (then
/// SIGKILL after a grace period), so a preempted training run keeps its last step. Dispose to restore the defaults.
/// </summary>
public sealed class ConsoleCancellation : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly TextWriter _error;
    private readonly string _whatHappensNow;
    private readonly ConsoleCancelEventHandler _ctrlC;
    private readonly PosixSignalRegistration _sigterm;
    private int _signals;

    public ConsoleCancellation(TextWriter error, string whatHappensNow)
    {
        _error = error;
        _whatHappensNow = whatHappensNow;
        _ctrlC = (_, e) => e.Cancel = Interrupt("interrupted");
        Console.CancelKeyPress += _ctrlC;
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => c.Cancel = Interrupt("terminated (SIGTERM)"));
    }

    public CancellationToken Token => _source.Token;

    /// <summary>True to keep the process alive (the first signal), false to let the signal end it (the second).</summary>
    private bool Interrupt(string what)
    {
        if (Interlocked.Increment(ref _signals) > 1) return false;
        _source.Cancel();
        _error.WriteLine($"\n{what}: {_whatHappensNow} (again to stop at once)");
        return true;
    }

    /// <summary>
    /// Restores the default handling. The token source is not disposed: a signal's handler runs on a thread of its own and
    /// may still call <see cref="Interrupt"/> after this (cancelling a disposed source would throw there and end the process);
    /// without timers it holds nothing to release.
    /// </summary>
    public void Dispose()
    {
        Console.CancelKeyPress -= _ctrlC;
        _sigterm.Dispose();
    }
}
