using System.Diagnostics;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>Runs independent jobs on a few workers (each run uses one torch thread) and returns the results in job order.</summary>
public static class RunQueue
{
    public static IReadOnlyList<TResult> Run<TJob, TResult>(IReadOnlyList<TJob> jobs, int workers, Func<TJob, TResult> run, TextWriter log, string label)
    {
        var results = new TResult[jobs.Count];
        var clock = Stopwatch.StartNew();
        int done = 0, every = Math.Max(1, jobs.Count / 10);
        log.WriteLine($"[{label}] {jobs.Count} runs on {workers} workers");
        Parallel.For(0, jobs.Count, new ParallelOptions { MaxDegreeOfParallelism = workers }, i =>
        {
            results[i] = run(jobs[i]);
            int n = Interlocked.Increment(ref done);
            if (n % every == 0 || n == jobs.Count)
            {
                double eta = clock.Elapsed.TotalSeconds / n * (jobs.Count - n);
                lock (log) log.WriteLine($"  [{label}] {n}/{jobs.Count}, {clock.Elapsed.TotalSeconds:0}s elapsed, ~{eta:0}s left");
            }
        });
        return results;
    }
}
