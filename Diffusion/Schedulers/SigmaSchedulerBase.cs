using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// The k-diffusion style samplers (Euler, Euler ancestral, LMS): float32 timesteps, sigmas = sqrt((1 - ac) / ac)
/// interpolated in float64 at the timesteps and stored in float32 with a final 0, input scaled by 1 / sqrt(sigma^2 + 1).
/// </summary>
public abstract class SigmaSchedulerBase : SchedulerBase
{
    /// <summary>Training sigmas indexed by timestep, float32 as diffusers computes them in torch.</summary>
    protected readonly float[] TrainSigmas;
    /// <summary>Current schedule's sigmas (float32 values, one more than the timesteps).</summary>
    protected float[] SigmaArray;
    private int? _stepIndex;

    protected SigmaSchedulerBase(SchedulerConfig config, string name) : base(config, name, floatTimesteps: true)
    {
        TrainSigmas = TrainingSigmas();
        SigmaArray = TrainSigmas.Reverse().Append(0f).ToArray();
    }

    /// <summary>max(sigmas), or sqrt(max^2 + 1) for leading spacing (diffusers 0.25.0 init_noise_sigma).</summary>
    public override double InitNoiseSigma
    {
        get
        {
            float max = SigmaArray.Max();
            return Spacing(TimestepSpacing.Linspace) == TimestepSpacing.Leading ? MathF.Sqrt(max * max + 1f) : max;
        }
    }

    /// <summary>Index of the step about to be taken, set from the first timestep seen after SetTimesteps.</summary>
    protected int StepIndex => _stepIndex ?? throw new InvalidOperationException($"{Name}: no step in progress.");

    /// <summary>float32 timesteps of Euler/EulerA/LMS set_timesteps (before any Karras remapping); offsets are added in float32.</summary>
    protected double[] SpacedTimesteps(int n)
    {
        int N = Config.NumTrainTimesteps;
        float F(double v) => (float)v;
        return Spacing(TimestepSpacing.Linspace) switch
        {
            TimestepSpacing.Linspace => NumpyCompat.Reversed(NumpyCompat.Linspace(0, N - 1, n)).Select(v => (double)F(v)).ToArray(),
            TimestepSpacing.Leading => Enumerable.Range(0, n).Reverse().Select(i => (double)(F(i * (N / n)) + Config.StepsOffset)).ToArray(),
            TimestepSpacing.Trailing => NumpyCompat.Round(NumpyCompat.Arange(N, 0, -(double)N / n)).Select(v => (double)(F(v) - 1f)).ToArray(),
            _ => throw new InvalidOperationException(),
        };
    }

    protected void SetSigmaSchedule(double[] timesteps, double[] sigmasWithoutFinal, float final)
    {
        SigmaArray = sigmasWithoutFinal.Select(s => (float)s).Append(final).ToArray();
        SetSchedule(timesteps.Select(t => (double)(float)t).ToArray(), SigmaArray);
        _stepIndex = null;
    }

    /// <summary>
    /// Timesteps and sigmas of set_timesteps: sigmas interpolated at the spaced timesteps (or given by
    /// <paramref name="baseSigmas"/>), then optionally replaced by Karras sigmas spanning them, with the timesteps
    /// mapped back from those sigmas.
    /// </summary>
    protected void SpacedOrKarras(int n, double? sigmaMin, double? sigmaMax, double[]? baseSigmas, out double[] timesteps, out double[] sigmas)
    {
        timesteps = SpacedTimesteps(n);
        sigmas = baseSigmas ?? NumpyCompat.InterpOnIndex(timesteps, TrainSigmas);
        if (!Config.UseKarrasSigmas) return;
        var logSigmas = KarrasSigmas.LogOf(TrainSigmas);
        sigmas = KarrasSigmas.Sigmas(sigmaMin ?? sigmas[^1], sigmaMax ?? sigmas[0], n);
        timesteps = sigmas.Select(s => KarrasSigmas.SigmaToT(s, logSigmas)).ToArray();
    }

    /// <summary>diffusers' _init_step_index: the first match, or the second when the timestep occurs twice.</summary>
    protected void EnsureStepIndex(double timestep)
    {
        RequireSchedule();
        if (_stepIndex is not null) return;
        var matches = Enumerable.Range(0, TimestepArray.Length).Where(i => TimestepArray[i] == timestep).ToArray();
        if (matches.Length == 0) throw new ArgumentException($"{Name}: timestep {timestep} is not in the current schedule.", nameof(timestep));
        _stepIndex = matches.Length > 1 ? matches[1] : matches[0];
    }

    protected void AdvanceStep() => _stepIndex = StepIndex + 1;

    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        EnsureStepIndex(timestep);
        float sigma = SigmaArray[StepIndex];
        return sample / MathF.Sqrt(sigma * sigma + 1f);
    }

    /// <summary>x0 from the model output at noise level sigma (k-diffusion's denoiser parametrisation).</summary>
    protected Tensor PredictX0(Tensor modelOutput, Tensor sample, float sigma) => Config.PredictionType switch
    {
        PredictionType.Epsilon => sample - sigma * modelOutput,
        PredictionType.VPrediction => modelOutput * (-sigma / MathF.Sqrt(sigma * sigma + 1f)) + sample / (sigma * sigma + 1f),
        PredictionType.Sample => modelOutput,
        _ => throw new InvalidOperationException(),
    };

    /// <summary>x0 + sigma(t) noise, with t looked up in the current schedule (values of <see cref="IScheduler.Timesteps"/>).</summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        RequireSchedule();
        using var scope = NewDisposeScope();
        using var tcpu = timesteps.to_type(ScalarType.Float64).cpu();
        var idx = tcpu.data<double>().ToArray().Select(t =>
        {
            int i = Array.IndexOf(TimestepArray, (double)(float)t);
            return i >= 0 ? (long)i : throw new ArgumentException($"{Name}.AddNoise: timestep {t} is not in the current schedule.", nameof(timesteps));
        }).ToArray();
        var shape = new long[originalSamples.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        var sigma = tensor(idx.Select(i => SigmaArray[i]).ToArray(), device: originalSamples.device).to_type(originalSamples.dtype).reshape(shape);
        return (originalSamples + noise * sigma).MoveToOuterDisposeScope();
    }
}
