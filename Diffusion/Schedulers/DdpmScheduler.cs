using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>Ancestral sampling of Ho et al. 2020 (diffusers DDPMScheduler 0.25.0); draws noise at every step with t &gt; 0.</summary>
public sealed class DdpmScheduler : DdpmFamilyScheduler
{
    private readonly bool _fixedLarge;

    public DdpmScheduler(SchedulerConfig config) : base(config, "DDPMScheduler")
    {
        _fixedLarge = (config.VarianceType ?? "fixed_small") switch
        {
            "fixed_small" => false,
            "fixed_large" => true,
            var v => throw config.Unsupported(Name, $"variance_type '{v}' (supported: fixed_small, fixed_large)"),
        };
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null)
    {
        var (t, alphaProdT, alphaProdTPrev) = StepAlphas(timestep, 1f);
        float betaProdT = 1f - alphaProdT, betaProdTPrev = 1f - alphaProdTPrev;
        float currentAlphaT = alphaProdT / alphaProdTPrev, currentBetaT = 1f - currentAlphaT;

        using var scope = NewDisposeScope();
        var (x0, _) = PredictX0AndEps(modelOutput, sample, alphaProdT);
        if (Config.ClipSample == true) x0 = x0.clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        // Posterior mean, eq. (7) of Ho et al.
        float x0Coeff = MathF.Sqrt(alphaProdTPrev) * currentBetaT / betaProdT;
        float sampleCoeff = MathF.Sqrt(currentAlphaT) * betaProdTPrev / betaProdT;
        var prev = x0Coeff * x0 + sampleCoeff * sample;
        if (t > 0)
        {
            if (noise is null) throw new ArgumentNullException(nameof(noise), $"{Name}.Step draws noise: pass a NoiseSource.");
            float variance = _fixedLarge ? currentBetaT : MathF.Max(betaProdTPrev / betaProdT * currentBetaT, 1e-20f);
            prev = prev + MathF.Sqrt(variance) * noise.NextLike(modelOutput);
        }
        return prev.MoveToOuterDisposeScope();
    }
}
