using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// Pseudo numerical methods (Liu et al. 2022, arXiv:2202.09778) as diffusers PNDMScheduler 0.25.0 runs them for
/// Stable Diffusion: skip_prk_steps, i.e. linear multistep (PLMS) only. The schedule has num_inference_steps + 1
/// entries: the second is repeated, and the step at that repeat finishes a second-order start-up step.
/// </summary>
public sealed class PndmScheduler : SchedulerBase
{
    private readonly float _finalAlphaCumprod;
    private readonly TensorHistory _ets = new(4);
    private Tensor? _curSample;
    private int _counter;

    public PndmScheduler(SchedulerConfig config) : base(config, "PNDMScheduler", floatTimesteps: false)
    {
        if (!config.SkipPrkSteps) throw config.Unsupported(Name, "Runge-Kutta warm-up steps (set skip_prk_steps: true, as Stable Diffusion does)");
        if (config.PredictionType == PredictionType.Sample) throw config.Unsupported(Name, "prediction_type 'sample'");
        _finalAlphaCumprod = (config.SetAlphaToOne ?? false) ? 1f : Ac[0];
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckInferenceSteps(numInferenceSteps);
        int N = Config.NumTrainTimesteps, n = numInferenceSteps;
        double[] ascending = Spacing(TimestepSpacing.Leading) switch
        {
            TimestepSpacing.Linspace => NumpyCompat.Round(NumpyCompat.Linspace(0, N - 1, n)),
            TimestepSpacing.Leading => Enumerable.Range(0, n).Select(i => (double)(i * (N / n) + Config.StepsOffset)).ToArray(),
            TimestepSpacing.Trailing => NumpyCompat.Reversed(NumpyCompat.Round(NumpyCompat.Arange(N, 0, -(double)N / n))).Select(v => v - 1).ToArray(),
            _ => throw new InvalidOperationException(),
        };
        // plms_timesteps = concat(ts[:-1], ts[-2:-1], ts[-1:])[::-1]
        var plms = ascending[..^1].Concat(ascending[Math.Max(0, n - 2)..^1]).Concat(ascending[^1..]).Reverse().ToArray();
        SetSchedule(plms, null, n);
        ResetState();
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null)
    {
        RequireSchedule();
        int ratio = Config.NumTrainTimesteps / NumInferenceSteps;
        long t = (long)timestep;
        long prevT = t - ratio;
        if (_counter != 1) _ets.Add(modelOutput);
        else { prevT = t; t += ratio; }

        using var scope = NewDisposeScope();
        Tensor eps;
        if (_ets.Count == 1 && _counter == 0)
        {
            eps = modelOutput;
            _curSample?.Dispose();
            _curSample = sample.detach().clone().DetachFromDisposeScope();
        }
        else if (_ets.Count == 1 && _counter == 1)
        {
            eps = (modelOutput + _ets[^1]) / 2;
            sample = _curSample ?? throw new InvalidOperationException($"{Name}: internal state lost.");
        }
        else if (_ets.Count == 2) eps = (3 * _ets[^1] - _ets[^2]) / 2;
        else if (_ets.Count == 3) eps = (23 * _ets[^1] - 16 * _ets[^2] + 5 * _ets[^3]) / 12;
        else eps = (1.0 / 24) * (55 * _ets[^1] - 59 * _ets[^2] + 37 * _ets[^3] - 9 * _ets[^4]);

        var prev = PrevSample(sample, t, prevT, eps);
        if (_counter == 1 && _ets.Count == 1) { _curSample?.Dispose(); _curSample = null; }
        _counter++;
        return prev.MoveToOuterDisposeScope();
    }

    /// <summary>Eq. (9) of the PNDM paper.</summary>
    private Tensor PrevSample(Tensor sample, long t, long prevT, Tensor modelOutput)
    {
        float alphaProdT = AlphaCumprod(t);
        float alphaProdTPrev = prevT >= 0 ? AlphaCumprod(prevT) : _finalAlphaCumprod;
        float betaProdT = 1f - alphaProdT, betaProdTPrev = 1f - alphaProdTPrev;
        if (Config.PredictionType == PredictionType.VPrediction)
            modelOutput = MathF.Sqrt(alphaProdT) * modelOutput + MathF.Sqrt(betaProdT) * sample;
        float sampleCoeff = MathF.Sqrt(alphaProdTPrev / alphaProdT);
        float denom = alphaProdT * MathF.Sqrt(betaProdTPrev) + MathF.Sqrt(alphaProdT * betaProdT * alphaProdTPrev);
        return sampleCoeff * sample - (alphaProdTPrev - alphaProdT) * modelOutput / denom;
    }

    private void ResetState()
    {
        _ets.Clear();
        _curSample?.Dispose();
        _curSample = null;
        _counter = 0;
    }

    public override void Dispose()
    {
        ResetState();
        base.Dispose();
    }
}
