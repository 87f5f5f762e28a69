namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// DDPM and DDIM: integer timesteps (diffusers 0.25.0 set_timesteps, default spacing leading) and a step from t to
/// t - num_train_timesteps / num_inference_steps, whatever the spacing (as diffusers does).
/// </summary>
public abstract class DdpmFamilyScheduler : SchedulerBase
{
    protected DdpmFamilyScheduler(SchedulerConfig config, string name) : base(config, name, floatTimesteps: false) { }

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckInferenceSteps(numInferenceSteps);
        int N = Config.NumTrainTimesteps, n = numInferenceSteps;
        double[] timesteps = Spacing(TimestepSpacing.Leading) switch
        {
            TimestepSpacing.Linspace => NumpyCompat.Reversed(NumpyCompat.Round(NumpyCompat.Linspace(0, N - 1, n))),
            TimestepSpacing.Leading => Enumerable.Range(0, n).Reverse().Select(i => (double)(i * (N / n) + Config.StepsOffset)).ToArray(),
            TimestepSpacing.Trailing => NumpyCompat.Round(NumpyCompat.Arange(N, 0, -(double)N / n)).Select(v => v - 1).ToArray(),
            _ => throw new InvalidOperationException(),
        };
        SetSchedule(timesteps, null);
    }

    /// <summary>alphas_cumprod at t and at the previous timestep (<paramref name="finalAlphaCumprod"/> below 0).</summary>
    protected (long T, float AlphaProdT, float AlphaProdTPrev) StepAlphas(double timestep, float finalAlphaCumprod)
    {
        RequireSchedule();
        long t = (long)timestep;
        long prevT = t - Config.NumTrainTimesteps / NumInferenceSteps;
        return (t, AlphaCumprod(t), prevT >= 0 ? AlphaCumprod(prevT) : finalAlphaCumprod);
    }
}
