using System.Diagnostics;
using System.Text;
using DiffusionPeft.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// SDS-LoRA's claim, tested where it is made: the factors' conditioning. Every run of a seed starts from the SAME
/// product ΔW0 = σ0·U0·V0ᵀ (σ0 = 0.5, random rank-4 subspaces), as balanced factors rebalanced by M: (B0·M, M⁻¹·A0)
/// with cond(M) = κ(M). The forward, the loss and the target are identical across κ(M); only the parameterization
/// differs. Target: a general rank-4 ΔW* with all singular values 1 (κ = 1) on a frozen 64→64 layer, label noise
/// 1e-3 of the base error. LoRA, SDS-LoRA (QR) and SDS-LoRA (polar), rank 4, under AdamW, SGD and SGD+momentum, learning
/// rate chosen per (start, method, optimizer) on the tuning seeds. A reference row starts from the usual init (B = 0).
/// </summary>
public static class FactorConditioningExperiment
{
    public static readonly LayerShape Shape = new(64, 64);
    public const int Rank = 4;
    public const double StartSigma = 0.5;

    private static readonly OptimizerKind[] Optimizers_ = [OptimizerKind.AdamW, OptimizerKind.Sgd, OptimizerKind.SgdMomentum];

    public sealed record Start(string Name, double? KappaM);

    private sealed record Job(Start Start, Arm Arm, OptimizerKind Optimizer, double Lr, int Seed, bool Tuning);

    private sealed record Result(Job Job, RunOutcome Outcome, double Floor, double StartLoss);

    public static IReadOnlyList<Arm> Arms { get; } = [Arm.Lora(Rank), Arm.Sds(Rank, SdsBasis.Qr), Arm.Sds(Rank, SdsBasis.Polar)];

    public static ExperimentSection Run(ClaimsConfig c, string outDir, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        var starts = c.FactorKappas.Select(k => new Start($"κ(M) = {k:0}", k)).Append(new Start("usual init (B = 0)", null)).ToList();
        var tuneJobs = (from s in starts from a in Arms from o in Optimizers_ from lr in c.LearningRates(o) from seed in c.TuningSeeds
                        select new Job(s, a, o, lr, seed, true)).ToList();
        var tuned = RunQueue.Run(tuneJobs, c.Workers, j => RunOne(c, j), log, "factor conditioning: tuning");
        var chosen = tuned.GroupBy(r => (r.Job.Start, r.Job.Arm, r.Job.Optimizer))
                          .ToDictionary(g => g.Key, g => LrChoice.BySpeed(g.Select(r => (r.Job.Lr, r.Outcome))));
        var reportJobs = (from s in starts from a in Arms from o in Optimizers_ from seed in c.ReportSeeds
                          select new Job(s, a, o, chosen[(s, a, o)], seed, false)).ToList();
        var reported = RunQueue.Run(reportJobs, c.Workers, j => RunOne(c, j), log, "factor conditioning: report");

        var rows = reported.GroupBy(r => (r.Job.Start, r.Job.Arm, r.Job.Optimizer)).Select(g => new
        {
            g.Key.Start, g.Key.Arm, g.Key.Optimizer, Lr = chosen[g.Key],
            Steps = ConfidenceIntervals.MedianBootstrap(g.Select(r => r.Outcome.StepsOrInfinity).ToList()),
            Final = ConfidenceIntervals.GeoMeanT(g.Select(r => r.Outcome.Final).ToList()),
            Diverged = g.Count(r => r.Outcome.Diverged),
            Runs = g.ToList(),
        }).ToList();

        // The forward is identical across κ(M): the spread of the step-0 loss over starts of one seed (rebalanced starts only).
        double startSpread = reported.Where(r => r.Job.Start.KappaM is not null).GroupBy(r => r.Job.Seed)
            .Max(g => (g.Max(r => r.StartLoss) - g.Min(r => r.StartLoss)) / g.Average(r => r.StartLoss));
        double floor = reported.Average(r => r.Floor);

        var md = new StringBuilder();
        md.AppendLine($"Frozen {Shape} layer, target ΔW* general rank 4 with singular values 1, label noise (relative loss floor {Format.Sci(floor)}). " +
                      $"Start: the same product 0.5·U0·V0ᵀ for every κ(M), as (B0·M, M⁻¹·A0); largest relative spread of the step-0 loss across κ(M) within a seed: {Format.Sci(startSpread)}. " +
                      $"Rank {Rank}, α = r, {c.Steps} steps, batch 256. Threshold: relative loss ≤ 2 × the noise floor (excess error ≤ the noise). " +
                      $"Learning rate per (start, method, optimizer): fewest median steps on tuning seeds {{{string.Join(", ", c.TuningSeeds)}}} " +
                      $"(grids: AdamW {{{string.Join(", ", c.FactorAdamWLrs.Select(Format.Lr))}}}, SGD {{{string.Join(", ", c.SgdLrs.Select(Format.Lr))}}}, " +
                      $"SGD+momentum {{{string.Join(", ", c.SgdMomentumLrs.Select(Format.Lr))}}}). Reported: seeds {{{string.Join(", ", c.ReportSeeds)}}}; " +
                      "steps = median [95% bootstrap interval], final loss = geometric mean [95% t-interval on log10].");
        md.AppendLine();
        foreach (var o in Optimizers_)
        {
            md.AppendLine($"**{Optimizers.Label(o)}**");
            md.AppendLine();
            md.AppendLine("| start | " + string.Join(" | ", Arms.Select(a => $"{a.Name}: steps to 2×floor | final loss | LR")) + " |");
            md.AppendLine("|---|" + string.Concat(Arms.Select(_ => "---:|---:|---:|")));
            foreach (var s in starts)
            {
                md.Append($"| {s.Name} |");
                foreach (var a in Arms)
                {
                    var r = rows.First(x => x.Start == s && x.Arm == a && x.Optimizer == o);
                    string final = r.Diverged > 0 ? $"diverged {r.Diverged}/{r.Runs.Count}" : Format.SciInterval(r.Final);
                    md.Append($" {Format.Steps(r.Steps, c.Steps)} | {final} | {Format.Lr(r.Lr)} |");
                }
                md.AppendLine();
            }
            md.AppendLine();
        }
        md.AppendLine("![factor conditioning](factor-conditioning.png)");
        md.AppendLine();

        var panels = new List<ScottPlot.Plot>();
        foreach (var o in Optimizers_)
            panels.Add(Charts.Panel($"{Optimizers.Label(o)}: steps to 2×floor", Arms.Select(a => new Charts.Series(a.Name,
                rows.Where(r => r.Optimizer == o && r.Arm == a && r.Start.KappaM is not null).Select(r => (r.Start.KappaM!.Value, r.Steps)).ToList())).ToList(),
                "κ(M) = cond of each factor (same product)", "steps (median, 95% CI)", logX: true, logY: true, cap: c.Steps * 1.5, xTicks: c.FactorKappas));
        foreach (var o in Optimizers_)
            panels.Add(Charts.Panel($"{Optimizers.Label(o)}: final relative loss", Arms.Select(a => new Charts.Series(a.Name,
                rows.Where(r => r.Optimizer == o && r.Arm == a && r.Start.KappaM is not null).Select(r => (r.Start.KappaM!.Value, r.Final)).ToList())).ToList(),
                "κ(M)", "final loss (geo-mean, 95% CI)", logX: true, logY: true, cap: 100, xTicks: c.FactorKappas, hLine: floor));
        Charts.Grid(Path.Combine(outDir, "factor-conditioning.png"),
            $"Same product, factors rebalanced by M: steps to 2×noise floor and final loss vs κ(M) (seeds {string.Join(",", c.ReportSeeds)}; hollow = not reached / diverged; dashed = noise floor)", panels, 3);

        var json = new
        {
            design = new { shape = Shape.ToString(), rank = Rank, startSigma = StartSigma, targetRank = 4, targetKappa = 1.0, c.Steps, batch = 256, noiseFloor = floor, startLossSpread = startSpread },
            chosenLearningRates = chosen.Select(kv => new { start = kv.Key.Start.Name, arm = kv.Key.Arm.Name, optimizer = kv.Key.Optimizer.ToString(), lr = kv.Value }),
            summary = rows.Select(r => new
            {
                start = r.Start.Name, kappaM = r.Start.KappaM, arm = r.Arm.Name, optimizer = r.Optimizer.ToString(), lr = r.Lr,
                stepsToThreshold = Format.JsonInterval(r.Steps), finalLoss = Format.JsonInterval(r.Final), diverged = r.Diverged,
            }),
            runs = tuned.Concat(reported).Select(r => new
            {
                start = r.Job.Start.Name, arm = r.Job.Arm.Name, optimizer = r.Job.Optimizer.ToString(), lr = r.Job.Lr, seed = r.Job.Seed, tuning = r.Job.Tuning,
                steps = r.Outcome.StepsToThreshold, final = Format.Json(r.Outcome.Final), diverged = r.Outcome.Diverged, startLoss = r.StartLoss,
                seconds = Math.Round(r.Outcome.Seconds, 3),
            }),
        };
        return new ExperimentSection("factorConditioning", "Factor conditioning at a fixed product: (B·M, M⁻¹·A)", md.ToString(), json, clock.Elapsed.TotalSeconds);
    }

    private static Result RunOne(ClaimsConfig c, Job j)
    {
        using var scope = NewDisposeScope();
        using var problem = Problem(c, j.Seed);
        using var layer = problem.NewAdapter(j.Arm.Options, j.Seed);
        if (j.Start.KappaM is double kappa)
        {
            var (b, a) = StartFactors(j.Seed, kappa);
            LinearTraining.SetFactors((LowRankPairLayer)layer, b, a);
        }
        double start = problem.RelativeLoss(layer);
        // Tuning only asks how fast: those runs stop at the threshold.
        var outcome = LinearTraining.Train(problem, layer, new TrainSettings(j.Optimizer, j.Lr, c.Steps, 2 * problem.NoiseFloor, StopAtThreshold: j.Tuning), j.Seed);
        return new Result(j, outcome, problem.NoiseFloor, start);
    }

    public static LinearProblem Problem(ClaimsConfig c, int seed, double targetKappa = 1)
    {
        using var scope = NewDisposeScope();
        var delta = LowRankTargets.Update(Shape.DOut, Shape.DIn, 4, targetKappa, 1.0, TargetKind.General, new Generator((ulong)(200_000 + seed)));
        return LinearProblem.Create(Shape, delta, c.NoiseFraction, seed);
    }

    /// <summary>(B0·M, M⁻¹·A0) for balanced factors of 0.5·U0·V0ᵀ; U0, V0 and M's singular vectors depend on the seed only, M's spectrum on κ.</summary>
    public static (Tensor B, Tensor A) StartFactors(int seed, double kappa)
    {
        var g = new Generator((ulong)(300_000 + seed));
        var u = LowRankTargets.Orthonormal(Shape.DOut, Rank, g);
        var v = LowRankTargets.Orthonormal(Shape.DIn, Rank, g);
        var (b0, a0) = FactorRebalancing.Balanced(u, v, StartSigma);
        var m = FactorRebalancing.ConditionedMatrix(Rank, kappa, new Generator((ulong)(400_000 + seed)));
        return FactorRebalancing.Rebalance(b0, a0, m);
    }
}
