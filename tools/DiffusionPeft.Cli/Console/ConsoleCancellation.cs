namespace DiffusionPeft.Cli.ConsoleUi;

/// <summary>
/// Ctrl-C for a long command: the first press cancels <see cref="Token"/> (the command finishes cleanly, e.g. saves a
/// checkpoint) and prints what happens next, instead of killing the process. Dispose to restore the default.
/// </summary>
public sealed class ConsoleCancellation : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly ConsoleCancelEventHandler _handler;

    public ConsoleCancellation(TextWriter error, string whatHappensNow)
    {
        _handler = (_, e) =>
        {
            e.Cancel = true;
            _source.Cancel();
            error.WriteLine($"\ninterrupted: {whatHappensNow}");
        };
        Console.CancelKeyPress += _handler;
    }

    public CancellationToken Token => _source.Token;

    public void Dispose()
    {
        Console.CancelKeyPress -= _handler;
        _source.Dispose();
    }
}
