using System.Diagnostics;
using System.Text;
using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// Effective rank of the factor gradients, compared at the SAME state: with G = dL/dW on one batch, LoRA's gradients
/// are s·G·Aᵀ (for B) and s·Bᵀ·G (for A), SDS-LoRA's are s·G·Q_A and s·Q_Bᵀ·G. The entropy effective rank is invariant
/// to rotations, so every orthonormal basis of the same column space (QR or polar) gives the same value. States: the
/// rebalanced starts of the factor-conditioning experiment (same product, κ(M) varies), and states along LoRA and
/// SDS-LoRA (polar) trajectories (AdamW, lr 1e-2, usual init) on general rank-4 targets with κ = 1 and 100.
/// </summary>
public static class GradientRankExperiment
{
    private static readonly int[] SnapshotSteps = [10, 50, 200];
    private static readonly double[] TargetKappas = [1, 100];

    private sealed record Measurement(string Group, int Seed, double LoraB, double SdsB, double LoraA, double SdsA, double CondA, double CondB,
                                      double CosLora, double CosQr, double CosPolar);

    public static ExperimentSection Run(ClaimsConfig c, string outDir, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        var jobs = new List<(string Kind, double Kappa, Arm? Arm, int Seed)>();
        foreach (var seed in c.ReportSeeds)
        {
            foreach (var k in c.FactorKappas) jobs.Add(("start", k, null, seed));
            foreach (var k in TargetKappas)
                foreach (var arm in new[] { Arm.Lora(4), Arm.Sds(4, SdsBasis.Polar) }) jobs.Add(("trajectory", k, arm, seed));
        }
        var measured = RunQueue.Run(jobs, c.Workers, j => j.Kind == "start" ? [AtStart(c, j.Kappa, j.Seed)] : AlongTrajectory(c, j.Kappa, j.Arm!, j.Seed), log, "gradient rank")
            .SelectMany(x => x).ToList();

        var groups = measured.GroupBy(m => m.Group).Select(g => new
        {
            Group = g.Key,
            LoraB = ConfidenceIntervals.MeanT(g.Select(m => m.LoraB).ToList()),
            SdsB = ConfidenceIntervals.MeanT(g.Select(m => m.SdsB).ToList()),
            DiffB = ConfidenceIntervals.MeanT(g.Select(m => m.SdsB - m.LoraB).ToList()),
            LoraA = ConfidenceIntervals.MeanT(g.Select(m => m.LoraA).ToList()),
            SdsA = ConfidenceIntervals.MeanT(g.Select(m => m.SdsA).ToList()),
            DiffA = ConfidenceIntervals.MeanT(g.Select(m => m.SdsA - m.LoraA).ToList()),
            CondA = ConfidenceIntervals.GeoMeanT(g.Select(m => m.CondA).ToList()),
            CondB = ConfidenceIntervals.GeoMeanT(g.Select(m => m.CondB).ToList()),
            CosLora = ConfidenceIntervals.MeanT(g.Select(m => m.CosLora).ToList()),
            CosQr = ConfidenceIntervals.MeanT(g.Select(m => m.CosQr).ToList()),
            CosPolar = ConfidenceIntervals.MeanT(g.Select(m => m.CosPolar).ToList()),
            QrAscent = g.Count(m => m.CosQr < 0),
            N = g.Count(),
        }).ToList();

        var md = new StringBuilder();
        md.AppendLine($"Rank 4 on a 64→64 layer, G from one fresh noisy batch of 256 at each state; seeds {{{string.Join(", ", c.ReportSeeds)}}}; " +
                      "mean [95% t-interval] over seeds; the difference is paired (same state). Maximum possible effective rank: 4.");
        md.AppendLine();
        md.AppendLine("| state | cond(A) | cond(B) | erank(G·Aᵀ) (LoRA ∇B) | erank(G·Q_A) (SDS ∇B) | SDS − LoRA | erank(Bᵀ·G) (LoRA ∇A) | erank(Q_Bᵀ·G) (SDS ∇A) | SDS − LoRA |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var g in groups)
            md.AppendLine($"| {g.Group} | {Format.Sci(g.CondA.Estimate)} | {Format.Sci(g.CondB.Estimate)} | {Format.NumInterval(g.LoraB)} | {Format.NumInterval(g.SdsB)} | {Format.NumInterval(g.DiffB)} | " +
                          $"{Format.NumInterval(g.LoraA)} | {Format.NumInterval(g.SdsA)} | {Format.NumInterval(g.DiffA)} |");
        md.AppendLine();
        md.AppendLine("Does the step descend? First-order weight-space step of each method at the same state, D = G·P_A + P_B·G with P = AᵀA and B·Bᵀ " +
                      "(LoRA) or Q_A·A and B·Q_Bᵀ (SDS-LoRA; positive-diagonal QR or polar basis): cos(D, G) > 0 is a descent direction. " +
                      "Mean [95% t-interval] over seeds, and how many states had cos < 0 for QR.");
        md.AppendLine();
        md.AppendLine("| state | cos(D, G) LoRA | cos(D, G) SDS QR | cos(D, G) SDS polar | QR ascent states |");
        md.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var g in groups)
            md.AppendLine($"| {g.Group} | {Format.NumInterval(g.CosLora, "0.000")} | {Format.NumInterval(g.CosQr, "0.000")} | {Format.NumInterval(g.CosPolar, "0.000")} | {g.QrAscent}/{g.N} |");
        md.AppendLine();
        md.AppendLine("![gradient effective rank at the same state](grad-erank.png)");
        md.AppendLine();

        var starts = groups.Where(g => g.Group.StartsWith("start")).ToList();
        var xs = c.FactorKappas;
        var panel = Charts.Panel("rebalanced starts: effective rank of the factor gradients", [
            new("erank(G·Aᵀ), LoRA ∇B", xs.Select((k, i) => (k, starts[i].LoraB)).ToList()),
            new("erank(G·Q_A), SDS ∇B", xs.Select((k, i) => (k, starts[i].SdsB)).ToList()),
            new("erank(Bᵀ·G), LoRA ∇A", xs.Select((k, i) => (k, starts[i].LoraA)).ToList()),
            new("erank(Q_Bᵀ·G), SDS ∇A", xs.Select((k, i) => (k, starts[i].SdsA)).ToList()),
        ], "κ(M)", "effective rank (mean, 95% CI)", logX: true, logY: false, xTicks: xs);
        Charts.Grid(Path.Combine(outDir, "grad-erank.png"), $"Gradient effective rank at the same state (seeds {string.Join(",", c.ReportSeeds)})", [panel], 1);

        var json = new
        {
            design = new { shape = "64→64", rank = 4, snapshotSteps = SnapshotSteps, targetKappas = TargetKappas, trajectoryLr = 1e-2, batch = 256 },
            groups = groups.Select(g => new
            {
                state = g.Group, condA = Format.JsonInterval(g.CondA), condB = Format.JsonInterval(g.CondB),
                loraB = Format.JsonInterval(g.LoraB), sdsB = Format.JsonInterval(g.SdsB), differenceB = Format.JsonInterval(g.DiffB),
                loraA = Format.JsonInterval(g.LoraA), sdsA = Format.JsonInterval(g.SdsA), differenceA = Format.JsonInterval(g.DiffA),
                cosStepLora = Format.JsonInterval(g.CosLora), cosStepQr = Format.JsonInterval(g.CosQr), cosStepPolar = Format.JsonInterval(g.CosPolar), qrAscentStates = g.QrAscent, states = g.N,
            }),
            measurements = measured,
        };
        return new ExperimentSection("gradientRank", "Gradient effective rank at the same state", md.ToString(), json, clock.Elapsed.TotalSeconds);
    }

    private static Measurement AtStart(ClaimsConfig c, double kappa, int seed)
    {
        using var scope = NewDisposeScope();
        using var problem = FactorConditioningExperiment.Problem(c, seed);
        using var layer = (LowRankPairLayer)problem.NewAdapter(Arm.Lora(4).Options, seed);
        var (b, a) = FactorConditioningExperiment.StartFactors(seed, kappa);
        LinearTraining.SetFactors(layer, b, a);
        return Measure($"start, κ(M) = {kappa:0}", problem, layer, seed, seed);
    }

    private static IReadOnlyList<Measurement> AlongTrajectory(ClaimsConfig c, double targetKappa, Arm arm, int seed)
    {
        using var scope = NewDisposeScope();
        using var problem = FactorConditioningExperiment.Problem(c, seed, targetKappa);
        using var layer = (LowRankPairLayer)problem.NewAdapter(arm.Options, seed);
        using var opt = Optimizers.Create(OptimizerKind.AdamW, layer.AdapterParameters().Select(p => p.Tensor), 1e-2);
        var g = new Generator((ulong)(500_000 + seed));
        var list = new List<Measurement>();
        for (int step = 1; step <= SnapshotSteps.Max(); step++)
        {
            using (var stepScope = NewDisposeScope())
            {
                var (x, y) = problem.Batch(g, 256);
                var l = nn.functional.mse_loss(layer.call(x), y);
                opt.zero_grad();
                l.backward();
                opt.step();
            }
            if (!layer.AdapterParameters().All(p => p.Tensor.isfinite().all().item<bool>())) break;
            AdapterLayer.OnOptimizerStep([layer], step);
            if (SnapshotSteps.Contains(step))
                list.Add(Measure($"{arm.Name.Split(" r")[0]} trajectory, target κ = {targetKappa:0}, step {step}", problem, layer, seed, seed * 1000 + step));
        }
        return list;
    }

    /// <summary>erank of LoRA's and SDS-LoRA's factor gradients at the layer's current (B, A), from one batch's G = dL/dW.</summary>
    private static Measurement Measure(string group, LinearProblem problem, LowRankPairLayer layer, int seed, int batchSeed)
    {
        using var scope = NewDisposeScope();
        var (x, y) = problem.Batch(new Generator((ulong)(777_000 + batchSeed)), 256);
        Tensor w;
        using (no_grad()) w = (problem.W0 + layer.DeltaWeight()).detach();
        w.requires_grad_(true);
        nn.functional.mse_loss(x.mm(w.t()), y).backward();
        var gW = w.grad!.to_type(ScalarType.Float64);
        var a = layer.lora_A.detach().to_type(ScalarType.Float64);
        var b = layer.lora_B.detach().to_type(ScalarType.Float64);
        var (qa, _) = linalg.qr(a.t(), linalg.QRMode.Reduced);
        var (qb, _) = linalg.qr(b, linalg.QRMode.Reduced);
        var (_, condA) = LowRankTargets.RankAndCondition(a, 1e-12);
        var (_, condB) = LowRankTargets.RankAndCondition(b, 1e-12);
        double Cos(Tensor pa, Tensor pb)
        {
            var d = gW.mm(pa) + pb.mm(gW);
            return ((d * gW).sum() / (linalg.norm(d) * linalg.norm(gW))).item<double>();
        }
        var (qaPos, qbPos) = (PositiveQr(a.t()), PositiveQr(b));
        var (qaPolar, qbPolar) = (Polar(a.t()), Polar(b));
        return new Measurement(group, seed, EffectiveRank.Of(gW.mm(a.t())), EffectiveRank.Of(gW.mm(qa)),
            EffectiveRank.Of(b.t().mm(gW)), EffectiveRank.Of(qb.t().mm(gW)), condA, condB,
            Cos(a.t().mm(a), b.mm(b.t())), Cos(qaPos.mm(a), b.mm(qbPos.t())), Cos(qaPolar.mm(a), b.mm(qbPolar.t())));
    }

    /// <summary>Q of the thin QR with diag(R) &gt; 0 (methods.md's basis).</summary>
    private static Tensor PositiveQr(Tensor m)
    {
        var (q, r) = linalg.qr(m, linalg.QRMode.Reduced);
        return q * where(r.diagonal().lt(0), -1.0, 1.0).to_type(q.dtype);
    }

    /// <summary>The polar factor U·Vᵀ of the thin SVD.</summary>
    private static Tensor Polar(Tensor m)
    {
        var (u, _, vh) = linalg.svd(m, fullMatrices: false);
        return u.mm(vh);
    }
}
