using System.Diagnostics;
using DiffusionPeft.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>Trains one adapter on a <see cref="LinearProblem"/> with fresh noisy batches (MSE), evaluating every few steps.</summary>
public static class LinearTraining
{
    public static RunOutcome Train(LinearProblem problem, AdapterLayer layer, TrainSettings s, int dataSeed)
    {
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var parameters = layer.AdapterParameters().Select(p => p.Tensor).Where(p => p.requires_grad).ToList();
        using var opt = Optimizers.Create(s.Optimizer, parameters, s.LearningRate);
        var g = new Generator((ulong)(500_000 + dataSeed));
        var steps = new List<int> { 0 };
        var loss = new List<double> { problem.RelativeLoss(layer) };
        bool diverged = false;
        int? hit = null;
        for (int step = 1; step <= s.Steps; step++)
        {
            using (var stepScope = NewDisposeScope())
            {
                var (x, y) = problem.Batch(g, s.Batch);
                var l = nn.functional.mse_loss(layer.call(x), y);
                opt.zero_grad();
                l.backward();
                opt.step();
                // A step that overflowed leaves non-finite factors (SDS-LoRA's SVD/QR of them would throw): that run diverged.
                if (!parameters.All(p => p.isfinite().all().item<bool>()))
                {
                    steps.Add(step);
                    loss.Add(double.PositiveInfinity);
                    diverged = true;
                    break;
                }
            }
            AdapterLayer.OnOptimizerStep([layer], step);
            if (step % s.EvalEvery != 0 && step != s.Steps) continue;
            double r = problem.RelativeLoss(layer);
            steps.Add(step);
            loss.Add(r);
            if (!double.IsFinite(r) || r > s.DivergeAt) { diverged = true; break; }
            if (hit is null && r <= s.Threshold)
            {
                hit = step;
                if (s.StopAtThreshold) break;
            }
        }
        return new RunOutcome(steps.ToArray(), loss.ToArray(), hit, diverged, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Sets a two-factor layer's (B, A) and refreshes its derived state (SDS-LoRA's bases).</summary>
    public static void SetFactors(LowRankPairLayer layer, Tensor b, Tensor a)
    {
        using (no_grad())
        {
            layer.lora_B.copy_(b);
            layer.lora_A.copy_(a);
        }
        AdapterLayer.OnOptimizerStep([layer], 0);
    }
}
