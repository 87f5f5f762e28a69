using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// Song et al. 2020 (arXiv:2010.02502), diffusers DDIMScheduler 0.25.0. <see cref="Eta"/> = 0 is deterministic;
/// with eta &gt; 0 each step adds eta * sigma_t * variance_noise drawn from the NoiseSource.
/// </summary>
public sealed class DdimScheduler : DdpmFamilyScheduler
{
    private readonly float _finalAlphaCumprod;

    public DdimScheduler(SchedulerConfig config) : base(config, "DDIMScheduler")
    {
        _finalAlphaCumprod = (config.SetAlphaToOne ?? true) ? 1f : Ac[0];
    }

    /// <summary>Weight of the stochastic term (eq. 16 of the paper); diffusers passes it to step().</summary>
    public double Eta { get; set; }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null)
    {
        var (_, alphaProdT, alphaProdTPrev) = StepAlphas(timestep, _finalAlphaCumprod);
        float betaProdT = 1f - alphaProdT, betaProdTPrev = 1f - alphaProdTPrev;

        using var scope = NewDisposeScope();
        var (x0, eps) = PredictX0AndEps(modelOutput, sample, alphaProdT);
        if (Config.ClipSample ?? true) x0 = x0.clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        float variance = betaProdTPrev / betaProdT * (1f - alphaProdT / alphaProdTPrev);
        float stdDevT = (float)Eta * MathF.Sqrt(variance);

        var direction = MathF.Sqrt(1f - alphaProdTPrev - stdDevT * stdDevT) * eps;
        var prev = MathF.Sqrt(alphaProdTPrev) * x0 + direction;
        if (Eta > 0)
        {
            if (noise is null) throw new ArgumentNullException(nameof(noise), $"{Name}.Step with eta > 0 draws noise: pass a NoiseSource.");
            prev = prev + stdDevT * noise.NextLike(modelOutput);
        }
        return prev.MoveToOuterDisposeScope();
    }
}
