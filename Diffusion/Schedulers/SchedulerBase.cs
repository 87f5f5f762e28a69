using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// What all schedulers share: the beta schedule and alphas_cumprod (float32, as diffusers keeps them in torch),
/// the DDPM forward process for training, and ownership of the long-lived tensors.
/// </summary>
public abstract class SchedulerBase : IScheduler
{
    /// <summary>alphas_cumprod as float32 values for the scalar arithmetic diffusers does on 0-d float32 tensors.</summary>
    protected readonly float[] Ac;
    private Tensor _timesteps;
    private Tensor? _sigmas;

    protected SchedulerBase(SchedulerConfig config, string name, bool floatTimesteps)
    {
        config.Validate();
        if (config.Thresholding) throw config.Unsupported(name, "thresholding");
        if (config.RescaleBetasZeroSnr) throw config.Unsupported(name, "rescale_betas_zero_snr");
        Config = config;
        Name = name;
        var betas = BetaSchedules.Make(config);
        Ac = BetaSchedules.AlphasCumprod(betas);
        // Long-lived tensors are detached from any dispose scope the caller has open.
        Betas = tensor(betas, ScalarType.Float32, CPU).DetachFromDisposeScope();
        AlphasCumprod = tensor(Ac, ScalarType.Float32, CPU).DetachFromDisposeScope();
        // Before SetTimesteps: the full training schedule, descending, as diffusers' constructors leave it.
        FloatTimesteps = floatTimesteps;
        _timesteps = TimestepTensor(NumpyCompat.Reversed(Enumerable.Range(0, config.NumTrainTimesteps).Select(i => (double)i).ToArray()));
    }

    public SchedulerConfig Config { get; }
    /// <summary>The diffusers class name, used in error messages.</summary>
    public string Name { get; }
    public virtual int Order => 1;
    public int NumInferenceSteps { get; protected set; }
    public Tensor Betas { get; }
    public Tensor AlphasCumprod { get; }
    public Tensor Timesteps => _timesteps;
    public Tensor? Sigmas => _sigmas;
    public virtual double InitNoiseSigma => 1.0;

    /// <summary>Timestep values of the current schedule (exactly the values in <see cref="Timesteps"/>).</summary>
    protected double[] TimestepArray { get; private set; } = [];

    public abstract void SetTimesteps(int numInferenceSteps);
    public virtual Tensor ScaleModelInput(Tensor sample, double timestep) => sample;
    public abstract Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null);

    /// <summary>Whether <see cref="Timesteps"/> is float32 (sigma family) rather than int64 (DDPM family).</summary>
    protected bool FloatTimesteps { get; }

    private Tensor TimestepTensor(double[] values) => FloatTimesteps
        ? tensor(values.Select(v => (float)v).ToArray(), ScalarType.Float32, CPU).DetachFromDisposeScope()
        : tensor(values.Select(v => (long)v).ToArray(), ScalarType.Int64, CPU).DetachFromDisposeScope();

    protected void SetSchedule(double[] timesteps, float[]? sigmas, int? numInferenceSteps = null)
    {
        _timesteps.Dispose();
        _sigmas?.Dispose();
        _timesteps = TimestepTensor(timesteps);
        TimestepArray = timesteps;
        _sigmas = sigmas is null ? null : tensor(sigmas, ScalarType.Float32, CPU).DetachFromDisposeScope();
        NumInferenceSteps = numInferenceSteps ?? timesteps.Length;
    }

    protected void RequireSchedule()
    {
        if (TimestepArray.Length == 0) throw new InvalidOperationException($"{Name}: call SetTimesteps before Step.");
    }

    protected void CheckInferenceSteps(int n)
    {
        if (n < 1 || n > Config.NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(n), $"{Name}: num_inference_steps must be in 1..{Config.NumTrainTimesteps} (got {n}).");
    }

    /// <summary>sqrt((1 - ac) / ac) per training timestep, float32 as diffusers computes it in torch.</summary>
    protected float[] TrainingSigmas() => Ac.Select(a => MathF.Sqrt((1f - a) / a)).ToArray();

    protected TimestepSpacing Spacing(TimestepSpacing classDefault) => Config.TimestepSpacing ?? classDefault;

    protected float AlphaCumprod(long t) => t >= 0 && t < Ac.Length ? Ac[t]
        : throw new ArgumentOutOfRangeException(nameof(t), $"{Name}: timestep {t} is outside 0..{Ac.Length - 1}.");

    /// <summary>sqrt(ac[t]) x0 + sqrt(1 - ac[t]) noise (DDPM, DDIM, PNDM and DPM-Solver in diffusers 0.25.0).</summary>
    public virtual Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var (sqrtA, sqrtOneMinusA) = TrainingCoefficients(originalSamples, timesteps);
        return (sqrtA * originalSamples + sqrtOneMinusA * noise).MoveToOuterDisposeScope();
    }

    public virtual Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var (sqrtA, sqrtOneMinusA) = TrainingCoefficients(sample, timesteps);
        return (sqrtA * noise - sqrtOneMinusA * sample).MoveToOuterDisposeScope();
    }

    private (Tensor SqrtA, Tensor SqrtOneMinusA) TrainingCoefficients(Tensor like, Tensor timesteps)
    {
        var idx = timesteps.to_type(ScalarType.Int64).to(like.device).flatten();
        if (idx.numel() > 0 && (idx.min().item<long>() < 0 || idx.max().item<long>() >= Ac.Length))
            throw new ArgumentOutOfRangeException(nameof(timesteps), $"{Name}: training timesteps must lie in 0..{Ac.Length - 1}.");
        var a = AlphasCumprod.to(like.dtype, like.device).index_select(0, idx);
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        return (a.pow(0.5).reshape(shape), (1 - a).pow(0.5).reshape(shape));
    }

    /// <summary>The model output converted to (x0, epsilon) for the DDPM family, given alphas_cumprod at t.</summary>
    protected (Tensor X0, Tensor Eps) PredictX0AndEps(Tensor modelOutput, Tensor sample, float alphaProdT)
    {
        float betaProdT = 1f - alphaProdT;
        float sqrtA = MathF.Sqrt(alphaProdT), sqrtB = MathF.Sqrt(betaProdT);
        return Config.PredictionType switch
        {
            PredictionType.Epsilon => ((sample - sqrtB * modelOutput) / sqrtA, modelOutput),
            PredictionType.Sample => (modelOutput, (sample - sqrtA * modelOutput) / sqrtB),
            PredictionType.VPrediction => (sqrtA * sample - sqrtB * modelOutput, sqrtA * modelOutput + sqrtB * sample),
            _ => throw new InvalidOperationException(),
        };
    }

    public virtual void Dispose()
    {
        Betas.Dispose();
        AlphasCumprod.Dispose();
        _timesteps.Dispose();
        _sigmas?.Dispose();
        GC.SuppressFinalize(this);
    }
}
