namespace DiffusionPeft.Experiments.AdapterMethods;

/// <summary>One learning rate of one condition and method, over seeds. Diverged seeds count as +∞.</summary>
public sealed record LrCell(double LearningRate, double MedianFinal, int DivergedSeeds, double? MedianStepsToThreshold, double? MedianStepsToStrict);

/// <summary>
/// One method on one (task, kind, κ). The best learning rate has the lowest median final loss (losses below 1e-9, the
/// float32 noise floor, count as equal; ties go to the fastest to the threshold). Steps to a threshold are the fewest over
/// learning rates of the median over seeds (the learning rate that gets there first need not be the best one at the end).
/// </summary>
public sealed record ConditionRow(
    TaskKind Task, TargetKind Kind, double Kappa, string Method, long Parameters, double SingLoraFloor,
    LrCell[] Cells, double BestLearningRate, double BestFinal, double BestFinalMin, double BestFinalMax, double? StepsToThreshold, double? StepsToStrict,
    int LrsConverged, int LrsDiverged, double ERankA, double ERankB,
    int[] CurveSteps, double[] CurveMedian, int[] RankSteps, double[] ERankACurve, double[] ERankBCurve);

/// <summary>A method over all conditions of a task.</summary>
public sealed record MethodSummary(
    TaskKind Task, string Method, long Parameters, int Solved, int Conditions, double GeoMeanBestFinal, double? MedianStepsSolved,
    int SolvedStrict, double? MedianStepsStrict,
    double MeanLrsConverged, int LrCount, int DivergedRuns, int Runs, double MeanERankA, double MeanERankB);

public sealed record SweepSummary(IReadOnlyList<ConditionRow> Rows, IReadOnlyList<MethodSummary> Methods);

public static class Summary
{
    public static SweepSummary Build(SweepConfig c, IReadOnlyList<MethodSpec> methods, IReadOnlyList<RunResult> runs)
    {
        var rows = new List<ConditionRow>();
        foreach (var g in runs.GroupBy(r => (r.Key.Task, r.Key.Kind, r.Key.Kappa, r.Key.Method)))
        {
            var byLr = g.GroupBy(r => r.Key.LearningRate).OrderBy(x => x.Key).ToList();
            var cells = byLr.Select(x => new LrCell(x.Key, Median(x.Select(r => r.Final)), x.Count(r => r.Diverged),
                                                    StepsMedian(x.Select(r => r.StepsToThreshold)), StepsMedian(x.Select(r => r.StepsToStrict)))).ToArray();
            var converged = cells.Where(x => x.MedianFinal <= c.Threshold).ToList();
            var best = cells.OrderBy(x => Math.Max(x.MedianFinal, FloatFloor))
                            .ThenBy(x => x.MedianStepsToThreshold ?? double.PositiveInfinity).First();
            var bestRuns = byLr.First(x => x.Key == best.LearningRate).OrderBy(r => r.Key.Seed).ToList();
            var (curveSteps, curve) = MedianCurve(bestRuns);
            var (rankSteps, erA, erB) = MeanRankCurves(bestRuns);
            var first = g.First();
            rows.Add(new ConditionRow(g.Key.Task, g.Key.Kind, g.Key.Kappa, g.Key.Method, first.Parameters, first.SingLoraFloor,
                cells, best.LearningRate, best.MedianFinal, bestRuns.Min(r => r.Final), bestRuns.Max(r => r.Final),
                Fewest(cells.Select(x => x.MedianStepsToThreshold)), Fewest(cells.Select(x => x.MedianStepsToStrict)),
                converged.Count, cells.Count(x => x.DivergedSeeds > 0), MeanFinite(erA), MeanFinite(erB),
                curveSteps, curve, rankSteps, erA, erB));
        }
        var order = methods.Select(m => m.Name).ToList();
        rows = rows.OrderBy(r => r.Task).ThenBy(r => r.Kind).ThenBy(r => r.Kappa).ThenBy(r => order.IndexOf(r.Method)).ToList();

        var summaries = rows.GroupBy(r => (r.Task, r.Method)).OrderBy(x => x.Key.Task).ThenBy(x => order.IndexOf(x.Key.Method))
            .Select(x =>
            {
                var solved = x.Where(r => r.StepsToThreshold is not null).ToList();
                var strict = x.Where(r => r.StepsToStrict is not null).ToList();
                var taskRuns = runs.Where(r => r.Key.Task == x.Key.Task && r.Key.Method == x.Key.Method).ToList();
                return new MethodSummary(x.Key.Task, x.Key.Method, x.First().Parameters, solved.Count, x.Count(),
                    Math.Exp(x.Average(r => Math.Log(Math.Clamp(r.BestFinal, 1e-12, 1e12)))),
                    solved.Count > 0 ? Median(solved.Select(r => r.StepsToThreshold!.Value)) : null,
                    strict.Count, strict.Count > 0 ? Median(strict.Select(r => r.StepsToStrict!.Value)) : null,
                    x.Average(r => (double)r.LrsConverged), c.LearningRates.Length, taskRuns.Count(r => r.Diverged), taskRuns.Count,
                    MeanFinite(x.Select(r => r.ERankA)), MeanFinite(x.Select(r => r.ERankB)));
            }).ToList();
        return new SweepSummary(rows, summaries);
    }

    public static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        if (v.Length == 0) return double.NaN;
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    /// <summary>Relative losses below this are float32 round-off: the methods that reach it are tied.</summary>
    public const double FloatFloor = 1e-9;

    private static double? Finite(double x) => double.IsFinite(x) ? x : null;

    /// <summary>Median over seeds of the steps to a threshold; a seed that never reached it counts as +∞ (so null when half of them did not).</summary>
    private static double? StepsMedian(IEnumerable<int?> steps) => Finite(Median(steps.Select(s => (double?)s ?? double.PositiveInfinity)));

    private static double? Fewest(IEnumerable<double?> steps) => steps.Where(s => s is not null).Select(s => s!.Value).DefaultIfEmpty(double.NaN).Min() is var m && double.IsFinite(m) ? m : null;

    private static double MeanFinite(IEnumerable<double> xs)
    {
        var f = xs.Where(double.IsFinite).ToList();
        return f.Count > 0 ? f.Average() : double.NaN;
    }

    /// <summary>Per eval step, the median over seeds; a seed that stopped early (diverged) counts as +∞ from then on.</summary>
    private static (int[] Steps, double[] Median) MedianCurve(List<RunResult> runs)
    {
        var longest = runs.OrderByDescending(r => r.EvalSteps.Length).First().EvalSteps;
        var med = longest.Select((_, i) => Median(runs.Select(r => i < r.RelLoss.Length ? r.RelLoss[i] : double.PositiveInfinity))).ToArray();
        return (longest, med);
    }

    private static (int[] Steps, double[] A, double[] B) MeanRankCurves(List<RunResult> runs)
    {
        var longest = runs.OrderByDescending(r => r.RankSteps.Length).First().RankSteps;
        double[] Mean(Func<RunResult, double[]> f) =>
            longest.Select((_, i) => MeanFinite(runs.Where(r => i < f(r).Length).Select(r => f(r)[i]))).ToArray();
        return (longest, Mean(r => r.ERankA), Mean(r => r.ERankB));
    }
}
