using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// The shape every noise scheduler shares (diffusers 0.25.0 semantics). Use: <see cref="SetTimesteps"/>, start from
/// unit noise * <see cref="InitNoiseSigma"/>, then for each t in <see cref="Timesteps"/>: model(ScaleModelInput(x, t), t)
/// and x = Step(output, t, x). Schedulers are stateful (step index, multistep history) like their diffusers
/// counterparts; <see cref="SetTimesteps"/> resets that state.
/// </summary>
public interface IScheduler : IDisposable
{
    SchedulerConfig Config { get; }

    /// <summary>Model calls per element of <see cref="Timesteps"/> (1 for every scheduler here, as in diffusers).</summary>
    int Order { get; }

    int NumInferenceSteps { get; }

    /// <summary>int64 for DDPM, DDIM, PNDM and DPM-Solver; float32 for Euler, Euler ancestral and LMS. One model call per entry.</summary>
    Tensor Timesteps { get; }

    /// <summary>float32 noise levels (one more than <see cref="Timesteps"/>) for sigma-based schedulers; null otherwise.</summary>
    Tensor? Sigmas { get; }

    /// <summary>float32 [num_train_timesteps].</summary>
    Tensor Betas { get; }

    /// <summary>float32 [num_train_timesteps], cumprod(1 - betas) computed in float32 as diffusers does.</summary>
    Tensor AlphasCumprod { get; }

    /// <summary>Standard deviation of the initial noise (a float32 value).</summary>
    double InitNoiseSigma { get; }

    void SetTimesteps(int numInferenceSteps);

    Tensor ScaleModelInput(Tensor sample, double timestep);

    /// <summary>One denoising step from <paramref name="timestep"/> (an entry of <see cref="Timesteps"/>); returns the previous sample.
    /// Stochastic schedulers draw from <paramref name="noise"/> and throw if it is null.</summary>
    Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null);

    /// <summary>Forward diffusion of clean samples to the given training timesteps (one per batch item).</summary>
    Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps);

    /// <summary>The v-prediction target sqrt(ac[t]) * noise - sqrt(1 - ac[t]) * x0.</summary>
    Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps);
}

public static class SchedulerExtensions
{
    public static Tensor ScaleModelInput(this IScheduler s, Tensor sample, Tensor timestep) => s.ScaleModelInput(sample, TimestepValue(timestep));

    public static Tensor Step(this IScheduler s, Tensor modelOutput, Tensor timestep, Tensor sample, NoiseSource? noise = null) =>
        s.Step(modelOutput, TimestepValue(timestep), sample, noise);

    /// <summary>The timesteps as doubles (exact for int64 and float32 values).</summary>
    public static double[] TimestepValues(this IScheduler s)
    {
        using var t = s.Timesteps.to_type(ScalarType.Float64).cpu();
        return t.data<double>().ToArray();
    }

    private static double TimestepValue(Tensor t) =>
        t.numel() == 1 ? t.to_type(ScalarType.Float64).item<double>() : throw new ArgumentException($"expected a single timestep, got a tensor of shape [{string.Join(", ", t.shape)}].");
}
