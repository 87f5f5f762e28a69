using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2 with s_churn = 0), diffusers EulerDiscreteScheduler 0.25.0.</summary>
public sealed class EulerDiscreteScheduler : SigmaSchedulerBase
{
    public EulerDiscreteScheduler(SchedulerConfig config) : base(config, "EulerDiscreteScheduler")
    {
        if (config.TimestepType != "discrete") throw config.Unsupported(Name, $"timestep_type '{config.TimestepType}'");
        if (config.InterpolationType is not ("linear" or "log_linear"))
            throw config.Unsupported(Name, $"interpolation_type '{config.InterpolationType}' (supported: linear, log_linear)");
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckInferenceSteps(numInferenceSteps);
        double[]? logLinear = null;
        if (Config.InterpolationType == "log_linear")
        {
            // torch.linspace(log(sigma_max), log(sigma_min), n + 1).exp(): n + 1 sigmas (plus the final 0) for n timesteps, as in diffusers.
            using var scope = NewDisposeScope();
            var s = linspace(Math.Log(TrainSigmas[^1]), Math.Log(TrainSigmas[0]), numInferenceSteps + 1, ScalarType.Float32, CPU).exp();
            logLinear = s.data<float>().Select(v => (double)v).ToArray();
        }
        SpacedOrKarras(numInferenceSteps, Config.SigmaMin, Config.SigmaMax, logLinear, out var timesteps, out var sigmas);
        SetSigmaSchedule(timesteps, sigmas, 0f);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null)
    {
        EnsureStepIndex(timestep);
        using var scope = NewDisposeScope();
        float sigma = SigmaArray[StepIndex];
        var x0 = PredictX0(modelOutput, sample, sigma);
        var derivative = (sample - x0) / sigma;
        float dt = SigmaArray[StepIndex + 1] - sigma;
        var prev = sample + derivative * dt;
        AdvanceStep();
        return prev.MoveToOuterDisposeScope();
    }
}
