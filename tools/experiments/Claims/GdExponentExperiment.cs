using System.Diagnostics;
using System.Text;
using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// κ or κ² under plain gradient descent. Exact full-batch GD on the population loss ½‖W0 + s·B·A − W*‖²_F (float64, no
/// noise), in the regime where the linearized analysis applies: the target shares the adapters' subspaces
/// (ΔW* = U0·(I + 0.3·Z)·V0ᵀ, ‖Z‖₂ = 1, start ΔW0 = U0·V0ᵀ), so only the factors' conditioning κ(M) of (B0·M, M⁻¹·A0)
/// changes between runs. In weight space LoRA's step is −η s²(G·AᵀA + B·Bᵀ·G), whose eigenvalue ratio is κ(M)²;
/// SDS-LoRA's with the polar basis is −η s²(G·U_AΣ_AU_Aᵀ + U_BΣ_BU_Bᵀ·G), ratio κ(M). The learning rate is c / λ̂
/// with λ̂ the largest eigenvalue of the method's operator at the start (LoRA s²(σ_max(A)² + σ_max(B)²), SDS-LoRA
/// s²(σ_max(A) + σ_max(B))), c chosen on the tuning seeds. Measured: steps until the loss is 1e-4 of its start;
/// exponent p in steps ∝ κ(M)^p fitted per seed over κ(M) ≥ 2 where the budget sufficed.
/// </summary>
public static class GdExponentExperiment
{
    public static readonly LayerShape Shape = new(32, 32);
    public const int Rank = 4;
    public const double Perturbation = 0.3, Threshold = 1e-4;

    public static IReadOnlyList<Arm> Arms { get; } =
        [Arm.Lora(Rank), Arm.Sds(Rank, SdsBasis.Qr), Arm.Sds(Rank, SdsBasis.Polar)];

    private sealed record Job(Arm Arm, double Kappa, double Factor, int Seed, bool Tuning);

    private sealed record Result(Job Job, int? Steps, bool Diverged, double Lr, double FinalRelative);

    public static ExperimentSection Run(ClaimsConfig c, string outDir, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        var tuneJobs = (from a in Arms from k in c.GdKappas from f in c.GdLrFactors from s in c.TuningSeeds select new Job(a, k, f, s, true)).ToList();
        var tuned = RunQueue.Run(tuneJobs, c.Workers, j => RunOne(c, j), log, "GD exponent: tuning");
        static double Steps(Result r) => r.Steps is int s ? s : double.PositiveInfinity;
        var chosen = tuned.GroupBy(r => (r.Job.Arm, r.Job.Kappa)).ToDictionary(g => g.Key, g => g.GroupBy(r => r.Job.Factor)
            .OrderBy(x => ConfidenceIntervals.Median(x.Select(Steps).ToList())).ThenBy(x => ConfidenceIntervals.Median(x.Select(r => r.FinalRelative).ToList())).First().Key);
        var reportJobs = (from a in Arms from k in c.GdKappas from s in c.ReportSeeds select new Job(a, k, chosen[(a, k)], s, false)).ToList();
        var reported = RunQueue.Run(reportJobs, c.Workers, j => RunOne(c, j), log, "GD exponent: report");

        var cells = reported.GroupBy(r => (r.Job.Arm, r.Job.Kappa)).ToDictionary(g => g.Key, g => ConfidenceIntervals.MedianBootstrap(g.Select(Steps).ToList()));
        var exponents = Arms.ToDictionary(a => a, a =>
        {
            var perSeed = new List<double>();
            var fitted = new List<double>();
            foreach (var seed in c.ReportSeeds)
            {
                var pts = reported.Where(r => r.Job.Arm == a && r.Job.Seed == seed && r.Job.Kappa >= 2 && r.Steps is not null).OrderBy(r => r.Job.Kappa).ToList();
                if (pts.Count < 3) continue;
                perSeed.Add(LinearFit.Ols(pts.Select(r => Math.Log(r.Job.Kappa)).ToList(), pts.Select(r => Math.Log(r.Steps!.Value)).ToList()).Slope);
                fitted.Add(pts.Max(r => r.Job.Kappa));
            }
            return (Interval: ConfidenceIntervals.MeanT(perSeed), MaxKappa: fitted.Count > 0 ? fitted.Min() : double.NaN, Seeds: perSeed.Count);
        });

        var md = new StringBuilder();
        md.AppendLine($"Frozen {Shape} layer, rank {Rank}, float64, exact gradient (the population loss, no noise), plain GD (no momentum). " +
                      $"Budget {c.GdSteps} steps; threshold: loss ≤ {Format.Sci(Threshold)} × its start. κ(M) ∈ {{{string.Join(", ", c.GdKappas)}}}; " +
                      $"LR = c / λ̂, c ∈ {{{string.Join(", ", c.GdLrFactors)}}} chosen per (method, κ(M)) on tuning seeds {{{string.Join(", ", c.TuningSeeds)}}}; " +
                      $"reported seeds {{{string.Join(", ", c.ReportSeeds)}}}. Steps: median [95% bootstrap interval]. Exponent p (steps ∝ κ(M)^p): " +
                      "OLS of log steps on log κ(M) per seed over κ(M) ≥ 2 where the budget sufficed (≥ 3 points), mean [95% t-interval] over seeds.");
        md.AppendLine();
        md.AppendLine("| method | " + string.Join(" | ", c.GdKappas.Select(k => $"κ(M) = {k:0}")) + " | exponent p | fitted over κ(M) ≤ | seeds in fit |");
        md.AppendLine("|---|" + string.Concat(c.GdKappas.Select(_ => "---:|")) + "---:|---:|---:|");
        foreach (var a in Arms)
        {
            var e = exponents[a];
            md.AppendLine($"| {a.Name} | " + string.Join(" | ", c.GdKappas.Select(k => Format.Steps(cells[(a, k)], c.GdSteps))) +
                          $" | {Format.NumInterval(e.Interval)} | {Format.Num(e.MaxKappa, "0")} | {e.Seeds} |");
        }
        md.AppendLine();
        md.AppendLine("Chosen c: " + string.Join("; ", Arms.Select(a => $"{a.Name}: " + string.Join(", ", c.GdKappas.Select(k => Format.Lr(chosen[(a, k)]))))) + ".");
        md.AppendLine();
        md.AppendLine("![GD exponent](gd-exponent.png)");
        md.AppendLine();

        var panel = Charts.Panel("exact GD: steps to 1e-4 of the start loss vs κ(M)",
            Arms.Select(a => new Charts.Series($"{a.Name} (p = {Format.Num(exponents[a].Interval.Estimate)})", c.GdKappas.Select(k => (k, cells[(a, k)])).ToList())).ToList(),
            "κ(M) = cond of each factor (same product)", "steps (median, 95% CI)", logX: true, logY: true, cap: c.GdSteps * 1.5, xTicks: c.GdKappas);
        Charts.Grid(Path.Combine(outDir, "gd-exponent.png"), $"Plain GD, linearized regime: steps vs factor condition (seeds {string.Join(",", c.ReportSeeds)}; hollow = budget exhausted)", [panel], 1);

        var json = new
        {
            design = new { shape = Shape.ToString(), rank = Rank, perturbation = Perturbation, threshold = Threshold, budget = c.GdSteps, kappas = c.GdKappas, lrFactors = c.GdLrFactors },
            chosenFactors = chosen.Select(kv => new { arm = kv.Key.Arm.Name, kappaM = kv.Key.Kappa, c = kv.Value }),
            steps = cells.Select(kv => new { arm = kv.Key.Arm.Name, kappaM = kv.Key.Kappa, steps = Format.JsonInterval(kv.Value) }),
            exponents = exponents.Select(kv => new { arm = kv.Key.Name, exponent = Format.JsonInterval(kv.Value.Interval), fittedUpToKappa = Format.Json(kv.Value.MaxKappa), seeds = kv.Value.Seeds }),
            runs = tuned.Concat(reported).Select(r => new { arm = r.Job.Arm.Name, kappaM = r.Job.Kappa, c = r.Job.Factor, lr = r.Lr, seed = r.Job.Seed, tuning = r.Job.Tuning, steps = r.Steps, diverged = r.Diverged, finalRelative = Format.Json(r.FinalRelative) }),
        };
        return new ExperimentSection("gdExponent", "κ or κ² under plain gradient descent", md.ToString(), json, clock.Elapsed.TotalSeconds);
    }

    private static Result RunOne(ClaimsConfig c, Job j)
    {
        using var scope = NewDisposeScope();
        var f64 = ScalarType.Float64;
        var g = new Generator((ulong)(700_000 + j.Seed));
        var w0 = LowRankTargets.RandomWeight(Shape.DOut, Shape.DIn, g, f64);
        var u = LowRankTargets.Orthonormal(Shape.DOut, Rank, g, f64);
        var v = LowRankTargets.Orthonormal(Shape.DIn, Rank, g, f64);
        var z = randn([Rank, Rank], dtype: f64, generator: g);
        z = z / linalg.matrix_norm(z, 2);
        var target = (w0 + u.mm(eye(Rank, dtype: f64) + Perturbation * z).mm(v.t())).t();   // (W0 + ΔW*)ᵀ: the output for x = I
        var (b0, a0) = FactorRebalancing.Balanced(u, v, 1.0);
        var (b, a) = FactorRebalancing.Rebalance(b0, a0, FactorRebalancing.ConditionedMatrix(Rank, j.Kappa, new Generator((ulong)(800_000 + j.Seed))));

        using var layer = (LowRankPairLayer)AdapterInjector.Create(j.Arm.Options, new Parameter(w0.clone(), requires_grad: false), null);
        LinearTraining.SetFactors(layer, b, a);
        double sa = LowRankTargets.SingularValuesOf(a)[0], sb = LowRankTargets.SingularValuesOf(b)[0], s = layer.Scaling;
        double lambda = j.Arm.Options.Method == AdapterMethod.SdsLora ? s * s * (sa + sb) : s * s * (sa * sa + sb * sb);
        double lr = j.Factor / lambda;
        using var opt = optim.SGD(layer.AdapterParameters().Select(p => p.Tensor), lr);
        var x = eye(Shape.DIn, dtype: f64);
        double l0 = double.NaN, rel = 1;
        for (int t = 0; t <= c.GdSteps; t++)
        {
            using var step = NewDisposeScope();
            var loss = 0.5 * (layer.call(x) - target).square().sum();
            double value = loss.item<double>();
            if (t == 0) l0 = value;
            rel = value / l0;
            if (!double.IsFinite(rel) || rel > 1e3) return new Result(j, null, true, lr, double.PositiveInfinity);
            if (rel <= Threshold) return new Result(j, t, false, lr, rel);
            if (t == c.GdSteps) break;
            opt.zero_grad();
            loss.backward();
            opt.step();
            if (!layer.AdapterParameters().All(p => p.Tensor.isfinite().all().item<bool>())) return new Result(j, null, true, lr, double.PositiveInfinity);
            AdapterLayer.OnOptimizerStep([layer], t + 1);
        }
        return new Result(j, null, false, lr, rel);
    }
}
