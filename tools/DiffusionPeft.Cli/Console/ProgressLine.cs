using System.Diagnostics;

namespace DiffusionPeft.Cli.ConsoleUi;

/// <summary>
/// One progress line (bar, count, rate, time left) redrawn in place on a terminal; on a pipe or in quiet mode,
/// a plain log line at most every few seconds instead, so logs stay readable.
/// </summary>
public sealed class ProgressLine(TextWriter output, string unit, bool quiet)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _interactive = !quiet && !Console.IsErrorRedirected && ReferenceEquals(output, Console.Error);
    private double _lastLog = double.NegativeInfinity;
    private int _done, _total;
    private double _rateDone;

    public void Start(int total, int alreadyDone = 0)
    {
        _total = total;
        _done = 0;
        _clock.Restart();
        if (alreadyDone > 0) output.WriteLine($"{alreadyDone} {unit} already done; {total} to go.");
    }

    /// <summary>Reports <paramref name="done"/> of the total; <paramref name="detail"/> is appended (e.g. the loss or the sampling step).</summary>
    public void Report(int done, string detail = "", double? fractionalDone = null, bool force = false)
    {
        _done = done;
        _rateDone = fractionalDone ?? done;
        double elapsed = _clock.Elapsed.TotalSeconds;
        double rate = elapsed > 0 ? _rateDone / elapsed : 0;
        string eta = rate > 0 && _total > 0 ? Format(TimeSpan.FromSeconds(Math.Max(0, (_total - _rateDone) / rate))) : "--:--";
        string text = $"{done}/{_total} {unit} | {RateText(rate)} | elapsed {Format(_clock.Elapsed)} | left {eta}{(detail.Length > 0 ? " | " + detail : "")}";
        if (_interactive)
        {
            int width = 24, filled = _total > 0 ? (int)Math.Round(width * Math.Min(1, _rateDone / _total)) : 0;
            output.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {text}\u001b[K");
            if (done >= _total) output.WriteLine();
        }
        else if (force || done >= _total || elapsed - _lastLog >= 5)
        {
            _lastLog = elapsed;
            output.WriteLine(text);
        }
    }

    public void Message(string text)
    {
        if (_interactive) output.Write("\r\u001b[K");
        output.WriteLine(text);
    }

    private string RateText(double rate) => rate >= 1 || rate == 0 ? $"{rate:F2} {unit}/s" : $"{1 / rate:F1} s/{unit.TrimEnd('s')}";

    public static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes:D2}:{t.Seconds:D2}";
}
