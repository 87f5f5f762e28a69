using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

internal static class BetaSchedules
{
    /// <summary>float32 betas exactly as diffusers 0.25.0 builds them (torch.linspace in float32 for the linear schedules).</summary>
    public static Tensor Make(SchedulerConfig c)
    {
        int n = c.NumTrainTimesteps;
        if (c.TrainedBetas is not null) return tensor(c.TrainedBetas.Select(b => (float)b).ToArray(), ScalarType.Float32);
        return c.BetaSchedule switch
        {
            BetaSchedule.Linear => linspace(c.BetaStart, c.BetaEnd, n, ScalarType.Float32),
            BetaSchedule.ScaledLinear => linspace(Math.Sqrt(c.BetaStart), Math.Sqrt(c.BetaEnd), n, ScalarType.Float32).pow(2),
            BetaSchedule.SquaredCosCapV2 => tensor(CosineBetas(n, 0.999), ScalarType.Float32),
            _ => throw new InvalidOperationException(),
        };
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
