using System.Diagnostics;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// Runs a family's cases and checks the input contract on each: the entry point either accepts the input or refuses it
/// with the family's one exception type (or, where a case deletes a file, the missing-path types) whose message names
/// the input; it returns within a time limit; and the process's peak memory grows by no more than a small multiple of
/// the input's size. A process crash ends the test run itself. Failures are collected and reported together.
/// </summary>
public sealed class FuzzHarness(string family, ITestOutputHelper output)
{
    /// <summary>Memory any case may use beyond the multiple of its input (the runtime's and libtorch's own growth).</summary>
    public const long BaseMemoryAllowance = 256L << 20;
    public const int InputMemoryMultiple = 32;
    public static readonly TimeSpan CaseTimeLimit = TimeSpan.FromSeconds(60);

    private readonly List<string> _failures = [];
    private readonly Dictionary<string, int> _outcomes = new(StringComparer.Ordinal);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _worstPeak;

    public int Cases { get; private set; }

    /// <param name="what">The case, for the report (mutation and entry point).</param>
    /// <param name="names">What the refusal message must contain (the mutated file's path, or the folder holding it).</param>
    /// <param name="inputBytes">Size of the hostile input: the memory bound is a multiple of it.</param>
    /// <param name="expected">The family's documented exception type.</param>
    /// <param name="alsoAllowed">Other documented types for this case (e.g. FileNotFoundException where a file was deleted).</param>
    /// <param name="extraMemory">A documented allowance beyond the default bound (e.g. the image decoder's pixel limit).</param>
    public void Run(string what, string names, long inputBytes, Type expected, Action act, Type[]? alsoAllowed = null, long extraMemory = 0)
    {
        Cases++;
        long before = PeakMemory.Current();
        PeakMemory.Reset();
        Exception? error = null;
        var task = Task.Run(() =>
        {
            try { act(); }
            catch (Exception e) { error = e; }
        });
        if (!task.Wait(CaseTimeLimit))
        {
            // The case's thread cannot be stopped; report at once rather than pile more work on a busy process.
            _failures.Add($"{what}: did not finish within {CaseTimeLimit.TotalSeconds:F0} s (a hang)");
            AssertClean();
        }
        long grown = PeakMemory.Peak() - before;
        _worstPeak = Math.Max(_worstPeak, grown);
        long allowed = BaseMemoryAllowance + InputMemoryMultiple * inputBytes + extraMemory;
        if (grown > allowed) _failures.Add($"{what}: peak memory grew by {grown >> 20} MiB, more than the {allowed >> 20} MiB allowed for a {inputBytes:N0}-byte input");

        if (error is null) { Count("accepted"); return; }
        var type = error.GetType();
        bool documented = expected.IsInstanceOfType(error) || (alsoAllowed ?? []).Any(t => t.IsInstanceOfType(error));
        if (!documented)
            _failures.Add($"{what}: {type.FullName} instead of {expected.Name}: {error.Message}\n{error.StackTrace}");
        else if (!error.Message.Contains(names, StringComparison.Ordinal))
            _failures.Add($"{what}: the {type.Name} does not name '{names}': {error.Message}");
        Count(documented ? $"refused ({type.Name})" : $"UNDOCUMENTED {type.Name}");
    }

    private void Count(string outcome) => _outcomes[outcome] = _outcomes.GetValueOrDefault(outcome) + 1;

    /// <summary>Writes the family's summary and fails with the first faults if any case broke the contract.</summary>
    public void AssertClean()
    {
        output.WriteLine($"{family}: {Cases} cases in {_clock.Elapsed.TotalSeconds:F1} s (seed {FuzzSettings.Seed}, scale {FuzzSettings.Scale}); " +
                         string.Join(", ", _outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}")) +
                         (PeakMemory.Supported ? $"; worst peak growth {_worstPeak >> 20} MiB" : "; peak memory not measurable here"));
        if (_failures.Count == 0) return;
        Assert.Fail($"{family}: {_failures.Count} of {Cases} cases broke the input contract (seed {FuzzSettings.Seed}):\n\n" +
                    string.Join("\n\n", _failures.Take(12)) + (_failures.Count > 12 ? $"\n\n... and {_failures.Count - 12} more" : ""));
    }
}
