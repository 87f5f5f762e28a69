using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>Ancestral Euler sampling (k-diffusion sample_euler_ancestral), diffusers EulerAncestralDiscreteScheduler 0.25.0: noise is drawn at every step.</summary>
public sealed class EulerAncestralDiscreteScheduler : SigmaSchedulerBase
{
    public EulerAncestralDiscreteScheduler(SchedulerConfig config) : base(config, "EulerAncestralDiscreteScheduler")
    {
        if (config.PredictionType == PredictionType.Sample) throw config.Unsupported(Name, "prediction_type 'sample'");
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckInferenceSteps(numInferenceSteps);
        var timesteps = SpacedTimesteps(numInferenceSteps);
        SetSigmaSchedule(timesteps, NumpyCompat.InterpOnIndex(timesteps, TrainSigmas), 0f);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null)
    {
        EnsureStepIndex(timestep);
        if (noise is null) throw new ArgumentNullException(nameof(noise), $"{Name}.Step draws noise: pass a NoiseSource.");
        using var scope = NewDisposeScope();
        float sigma = SigmaArray[StepIndex], sigmaTo = SigmaArray[StepIndex + 1];
        var x0 = PredictX0(modelOutput, sample, sigma);
        float sigmaUp = MathF.Sqrt(sigmaTo * sigmaTo * (sigma * sigma - sigmaTo * sigmaTo) / (sigma * sigma));
        float sigmaDown = MathF.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
        var derivative = (sample - x0) / sigma;
        var prev = sample + derivative * (sigmaDown - sigma);
        prev = prev + noise.NextLike(modelOutput) * sigmaUp;
        AdvanceStep();
        return prev.MoveToOuterDisposeScope();
    }
}
