using System.Diagnostics;
using DiffusionPeft.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.AdapterMethods;

public sealed record RunKey(TaskKind Task, TargetKind Kind, double Kappa, string Method, double LearningRate, int Seed);

/// <summary>
/// One training run. RelLoss[i] is the eval MSE at EvalSteps[i] divided by the frozen base's eval MSE (1 at step 0).
/// ERankA/ERankB: entropy effective rank of the A-role (or SingLoRA's single matrix) and B-role gradients, averaged over layers.
/// </summary>
public sealed record RunResult(
    RunKey Key, int[] EvalSteps, double[] RelLoss, int[] RankSteps, double[] ERankA, double[] ERankB,
    bool Diverged, double Final, int? StepsToThreshold, int? StepsToStrict, long Parameters, double SingLoraFloor, double Seconds);

public static class Trainer
{
    public static RunResult Run(SweepConfig c, MethodSpec method, RunKey key)
    {
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        using var task = RegressionTask.Create(c, key.Task, key.Kind, key.Kappa, key.Seed, method);
        using var opt = LoraPlus.CreateAdamW(task.Layers, new AdamWSettings(key.LearningRate, WeightDecay: 0), method.LoraPlusLambda);

        // Same data stream for every method and learning rate of a seed.
        var gData = new Generator((ulong)(500_000 + key.Seed));
        var xEval = randn([c.EvalSamples, c.Dim], generator: new Generator((ulong)(900_000 + key.Seed)));
        Tensor yEval;
        double baseMse;
        using (no_grad())
        {
            yEval = task.Teacher(xEval);
            baseMse = nn.functional.mse_loss(task.Base(xEval), yEval).ToDouble();
        }

        var evalSteps = new List<int> { 0 };
        var rel = new List<double> { Evaluate(task, xEval, yEval) / baseMse };
        var rankSteps = new List<int>();
        var erA = new List<double>();
        var erB = new List<double>();
        bool diverged = false;
        for (int step = 1; step <= c.Steps; step++)
        {
            using var stepScope = NewDisposeScope();
            var x = randn([c.Batch, c.Dim], generator: gData);
            Tensor y;
            using (no_grad()) y = task.Teacher(x);
            var loss = nn.functional.mse_loss(task.Student(x), y);
            opt.zero_grad();
            loss.backward();
            if ((step - 1) % c.RankEvery == 0)
            {
                var (a, b) = GradientEffectiveRanks(task.Layers);
                rankSteps.Add(step - 1);
                erA.Add(a);
                erB.Add(b);
            }
            opt.step();
            AdapterLayer.OnOptimizerStep(task.Layers, step);

            if (step % c.EvalEvery == 0 || step == c.Steps)
            {
                double r = Evaluate(task, xEval, yEval) / baseMse;
                evalSteps.Add(step);
                rel.Add(r);
                if (!double.IsFinite(r) || r > c.DivergeAt) { diverged = true; break; }
            }
        }

        int? FirstBelow(double threshold)
        {
            for (int i = 0; i < rel.Count; i++)
                if (rel[i] <= threshold) return evalSteps[i];
            return null;
        }
        double final = diverged ? double.PositiveInfinity : rel[^1];
        return new RunResult(key, evalSteps.ToArray(), rel.ToArray(), rankSteps.ToArray(), erA.ToArray(), erB.ToArray(),
            diverged, final, FirstBelow(c.Threshold), FirstBelow(c.StrictThreshold), task.TrainableParameters, task.SingLoraFloor, clock.Elapsed.TotalSeconds);
    }

    private static double Evaluate(RegressionTask task, Tensor x, Tensor y)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return nn.functional.mse_loss(task.Student(x), y).ToDouble();
    }

    /// <summary>Mean over layers of the effective rank of each 2-D adapter gradient, split by role (A or single matrix / B). NaN where all gradients are zero.</summary>
    private static (double A, double B) GradientEffectiveRanks(IReadOnlyList<AdapterLayer> layers)
    {
        var a = new List<double>();
        var b = new List<double>();
        foreach (var layer in layers)
            foreach (var p in layer.AdapterParameters())
            {
                var g = p.Tensor.grad;
                if (g is null || g.dim() != 2) continue;
                double er = EffectiveRank.Of(g);
                if (double.IsNaN(er)) continue;
                (p.Role == AdapterParameterRole.B ? b : a).Add(er);
            }
        return (a.Count > 0 ? a.Average() : double.NaN, b.Count > 0 ? b.Average() : double.NaN);
    }
}
