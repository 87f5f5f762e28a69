using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

internal static class BetaSchedules
{
    /// <summary>float32 betas as diffusers 0.25.0 builds them (torch.linspace in float32 for the linear schedules).</summary>
    public static float[] Make(SchedulerConfig c)
    {
        int n = c.NumTrainTimesteps;
        if (c.TrainedBetas is not null) return c.TrainedBetas.Select(b => (float)b).ToArray();
        return c.BetaSchedule switch
        {
            BetaSchedule.Linear => TorchLinspace((float)c.BetaStart, (float)c.BetaEnd, n),
            BetaSchedule.ScaledLinear => TorchLinspace((float)Math.Sqrt(c.BetaStart), (float)Math.Sqrt(c.BetaEnd), n).Select(x => x * x).ToArray(),
            BetaSchedule.SquaredCosCapV2 => CosineBetas(n, 0.999),
            _ => throw new InvalidOperationException(),
        };
    }

    /// <summary>torch.cumprod(1 - betas) in float32: PyTorch's CPU kernel multiplies in a double accumulator and rounds each output.</summary>
    public static float[] AlphasCumprod(float[] betas)
    {
        var ac = new float[betas.Length];
        double acc = 1;
        for (int i = 0; i < betas.Length; i++) { acc *= 1f - betas[i]; ac[i] = (float)acc; }
        return ac;
    }

    /// <summary>
    /// torch.linspace(start, end, steps, dtype=float32) bit for bit as the CPU kernel of the reference PyTorch computes it
    /// (the one the golden data came from): step = (end - start) / (steps - 1) in float; element i is start + step * i below
    /// steps / 2 and end - step * (steps - 1 - i) above, each a fused multiply-add; whole 8-lane vectors are filled two at a
    /// time as base + lane * step from the formula at their first index, the tail element by element. A plain
    /// start + i * step formula differs from it by an ulp in about a quarter of the entries.
    /// </summary>
    public static float[] TorchLinspace(float start, float end, int steps)
    {
        if (steps == 1) return [start];
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        float At(int i) => i < halfway ? MathF.FusedMultiplyAdd(step, i, start) : MathF.FusedMultiplyAdd(-step, steps - i - 1, end);
        const int Lanes = 8;
        var y = new float[steps];
        int k = 0;
        for (; k <= steps - 2 * Lanes; k += Lanes)
        {
            float baseValue = At(k);
            for (int j = 0; j < Lanes; j++) y[k + j] = MathF.FusedMultiplyAdd(j, step, baseValue);
        }
        for (; k < steps; k++) y[k] = At(k);
        return y;
    }

    /// <summary>diffusers' betas_for_alpha_bar (Nichol and Dhariwal 2021, improved DDPM cosine schedule), computed in float64.</summary>
    private static float[] CosineBetas(int n, double maxBeta)
    {
        static double AlphaBar(double t) { double c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2); return c * c; }
        var betas = new float[n];
        for (int i = 0; i < n; i++)
        {
            double t1 = (double)i / n, t2 = (double)(i + 1) / n;
            betas[i] = (float)Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), maxBeta);
        }
        return betas;
    }
}
