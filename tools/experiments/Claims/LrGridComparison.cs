using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// Arms x conditions over the AdamW learning-rate grid, on tuning and report seeds alike. The learning rate of an
/// (arm, condition) is the one with the lowest median final loss on the tuning seeds; its report-seed runs give the final
/// loss. LR robustness is read from the report seeds at every grid learning rate: per seed, the number of learning
/// rates that reach 2 × the noise floor, and the number within 2× of that seed's best final loss.
/// </summary>
public static class LrGridComparison
{
    public sealed record Job(GridCondition Condition, Arm Arm, double Lr, int Seed, bool Tuning);

    public sealed record Result(Job Job, RunOutcome Outcome, double Floor, long Parameters);

    public sealed record Row(GridCondition Condition, Arm Arm, long Parameters, double ChosenLr, Interval Final, Interval Steps, int Diverged,
                             Interval LrsSolved, Interval LrsNearBest, IReadOnlyList<(double Lr, Interval Final)> PerLr, double Floor,
                             double RankFloor, double PsdFloor);

    public static (IReadOnlyList<Row> Rows, IReadOnlyList<Result> Runs) Run(ClaimsConfig c, IReadOnlyList<(GridCondition Condition, Arm Arm)> pairs, string label, TextWriter log)
    {
        var jobs = (from p in pairs from lr in c.AdamWLrs from seed in c.AllSeeds select new Job(p.Condition, p.Arm, lr, seed, c.TuningSeeds.Contains(seed))).ToList();
        var runs = RunQueue.Run(jobs, c.Workers, j => RunOne(c, j), log, label);
        var rows = new List<Row>();
        foreach (var (cond, arm) in pairs)
        {
            var mine = runs.Where(r => r.Job.Condition == cond && r.Job.Arm == arm).ToList();
            double lr = LrChoice.ByFinalLoss(mine.Where(r => r.Job.Tuning).Select(r => (r.Job.Lr, r.Outcome)));
            var report = mine.Where(r => !r.Job.Tuning).ToList();
            var atLr = report.Where(r => r.Job.Lr == lr).ToList();
            var solved = new List<double>();
            var nearBest = new List<double>();
            foreach (var seed in c.ReportSeeds)
            {
                var bySeed = report.Where(r => r.Job.Seed == seed).ToList();
                double best = bySeed.Min(r => r.Outcome.Final);
                solved.Add(bySeed.Count(r => r.Outcome.Final <= 2 * r.Floor));
                nearBest.Add(bySeed.Count(r => r.Outcome.Final <= 2 * best));
            }
            var (rankFloor, psdFloor) = Floors(c, cond, arm);
            rows.Add(new Row(cond, arm, mine[0].Parameters, lr,
                ConfidenceIntervals.GeoMeanT(atLr.Select(r => r.Outcome.Final).ToList()),
                ConfidenceIntervals.MedianBootstrap(atLr.Select(r => r.Outcome.StepsOrInfinity).ToList()),
                atLr.Count(r => r.Outcome.Diverged),
                ConfidenceIntervals.MeanT(solved), ConfidenceIntervals.MeanT(nearBest),
                c.AdamWLrs.Select(l => (l, ConfidenceIntervals.GeoMeanT(report.Where(r => r.Job.Lr == l).Select(r => r.Outcome.Final).ToList()))).ToList(),
                report.Average(r => r.Floor), rankFloor, psdFloor));
        }
        return (rows, runs);
    }

    public static LinearProblem Problem(ClaimsConfig c, GridCondition cond, int seed)
    {
        using var scope = NewDisposeScope();
        var delta = LowRankTargets.Update(cond.Shape.DOut, cond.Shape.DIn, cond.TargetRank, cond.Kappa, 1.0, cond.Kind,
            new Generator(600_000_000UL + cond.Key * 1000 + (ulong)seed));
        return LinearProblem.Create(cond.Shape, delta, c.NoiseFraction, seed);
    }

    private static Result RunOne(ClaimsConfig c, Job j)
    {
        using var scope = NewDisposeScope();
        using var problem = Problem(c, j.Condition, j.Seed);
        using var layer = problem.NewAdapter(j.Arm.Options, j.Seed);
        long parameters = layer.AdapterParameters().Sum(p => p.Tensor.numel());
        var outcome = LinearTraining.Train(problem, layer, new TrainSettings(OptimizerKind.AdamW, j.Lr, c.Steps, 2 * problem.NoiseFloor), j.Seed);
        return new Result(j, outcome, problem.NoiseFloor, parameters);
    }

    /// <summary>Mean over report seeds of the best rank-r relative error (Eckart–Young) and, for SingLoRA on a square layer, of the best rank-r PSD one.</summary>
    private static (double Rank, double Psd) Floors(ClaimsConfig c, GridCondition cond, Arm arm)
    {
        var rank = new List<double>();
        var psd = new List<double>();
        foreach (var seed in c.ReportSeeds)
        {
            using var problem = Problem(c, cond, seed);
            rank.Add(LowRankTargets.RankFloor(problem.DeltaStar, arm.Options.Rank));
            if (arm.Options.Method == Adapters.AdapterMethod.SingLora && cond.Shape.IsSquare) psd.Add(LowRankTargets.PsdFloor(problem.DeltaStar, arm.Options.Rank));
        }
        return (rank.Average(), psd.Count > 0 ? psd.Average() : double.NaN);
    }
}
