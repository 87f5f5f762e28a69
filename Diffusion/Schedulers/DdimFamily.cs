namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>Integer timestep spacing shared by DDPM and DDIM (diffusers 0.25.0 set_timesteps).</summary>
internal static class DdimFamily
{
    public static double[] Timesteps(SchedulerConfig c, TimestepSpacing spacing, int n)
    {
        int N = c.NumTrainTimesteps;
        return spacing switch
        {
            TimestepSpacing.Linspace => NumpyCompat.Reversed(NumpyCompat.Round(NumpyCompat.Linspace(0, N - 1, n))),
            TimestepSpacing.Leading => Enumerable.Range(0, n).Reverse().Select(i => (double)(i * (N / n) + c.StepsOffset)).ToArray(),
            TimestepSpacing.Trailing => NumpyCompat.Round(NumpyCompat.Arange(N, 0, -(double)N / n)).Select(v => v - 1).ToArray(),
            _ => throw new InvalidOperationException(),
        };
    }
}
