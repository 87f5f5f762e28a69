using System.Collections.Concurrent;
using System.Diagnostics;

namespace DiffusionPeft.Experiments.AdapterMethods;

/// <summary>Runs every (task, kind, κ, method, learning rate, seed) of a config, a few runs at a time (one torch thread each).</summary>
public static class Sweep
{
    public static IReadOnlyList<RunResult> Run(SweepConfig c, IReadOnlyList<MethodSpec> methods, TextWriter log)
    {
        var jobs = (from task in c.Tasks
                    from kind in c.Kinds
                    from kappa in c.Kappas
                    from m in methods
                    from lr in c.LearningRates
                    from seed in c.Seeds
                    select (m, new RunKey(task, kind, kappa, m.Name, lr, seed))).ToList();
        log.WriteLine($"[{c.Name}] {jobs.Count} runs of {c.Steps} steps on {c.Workers} workers");
        var results = new ConcurrentBag<RunResult>();
        var clock = Stopwatch.StartNew();
        int done = 0;
        Parallel.ForEach(jobs, new ParallelOptions { MaxDegreeOfParallelism = c.Workers }, job =>
        {
            results.Add(Trainer.Run(c, job.m, job.Item2));
            int n = Interlocked.Increment(ref done);
            if (n % 25 == 0 || n == jobs.Count)
            {
                double eta = clock.Elapsed.TotalSeconds / n * (jobs.Count - n);
                lock (log) log.WriteLine($"  {n}/{jobs.Count} runs, {clock.Elapsed.TotalSeconds:0}s elapsed, ~{eta:0}s left");
            }
        });
        return results.OrderBy(r => r.Key.Task).ThenBy(r => r.Key.Kind).ThenBy(r => r.Key.Kappa)
                      .ThenBy(r => methods.ToList().FindIndex(m => m.Name == r.Key.Method))
                      .ThenBy(r => r.Key.LearningRate).ThenBy(r => r.Key.Seed).ToList();
    }
}
