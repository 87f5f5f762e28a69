using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095) multistep, diffusers DPMSolverMultistepScheduler 0.25.0:
/// data prediction, order 1 or 2 ("2M" with the midpoint or heun second-order term), lower_order_final,
/// optional Karras sigmas. Integer timesteps; the model input is not scaled.
/// </summary>
public sealed class DpmSolverMultistepScheduler : SchedulerBase
{
    private readonly TensorHistory _x0Predictions;
    private readonly bool _midpoint;
    private float[] _sigmaArray = [];
    private int _lowerOrderNums;
    private int? _stepIndex;

    public DpmSolverMultistepScheduler(SchedulerConfig config) : base(config, "DPMSolverMultistepScheduler", floatTimesteps: false)
    {
        if (config.AlgorithmType != "dpmsolver++") throw config.Unsupported(Name, $"algorithm_type '{config.AlgorithmType}' (supported: dpmsolver++)");
        if (config.SolverOrder > 2) throw config.Unsupported(Name, $"solver_order {config.SolverOrder} (supported: 1, 2)");
        if (config.UseLuLambdas) throw config.Unsupported(Name, "use_lu_lambdas");
        if (config.VarianceType is "learned" or "learned_range") throw config.Unsupported(Name, $"variance_type '{config.VarianceType}'");
        // diffusers maps the DEIS/UniPC names logrho, bh1, bh2 to midpoint.
        _midpoint = config.SolverType switch
        {
            "midpoint" or "logrho" or "bh1" or "bh2" => true,
            "heun" => false,
            var s => throw config.Unsupported(Name, $"solver_type '{s}' (supported: midpoint, heun)"),
        };
        _x0Predictions = new TensorHistory(config.SolverOrder);
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckInferenceSteps(numInferenceSteps);
        int N = Config.NumTrainTimesteps, n = numInferenceSteps;

        // lambda_min_clipped: drop the tail of the schedule where lambda(t) = log(alpha_t / sigma_t) falls below it.
        using (var scope = NewDisposeScope())
        {
            var lambdaT = AlphasCumprod.sqrt().log() - (1 - AlphasCumprod).sqrt().log();
            var lambdas = lambdaT.flip(0).data<float>().ToArray();
            int clippedIdx = lambdas.Count(l => l < Config.LambdaMinClipped);
            LastTimestep = N - clippedIdx;
        }
        int last = LastTimestep;

        double[] timesteps = Spacing(TimestepSpacing.Linspace) switch
        {
            TimestepSpacing.Linspace => NumpyCompat.Reversed(NumpyCompat.Round(NumpyCompat.Linspace(0, last - 1, n + 1)))[..^1],
            TimestepSpacing.Leading => Enumerable.Range(0, n + 1).Reverse().Take(n).Select(i => (double)(i * (last / (n + 1)) + Config.StepsOffset)).ToArray(),
            TimestepSpacing.Trailing => NumpyCompat.Round(NumpyCompat.Arange(last, 0, -(double)N / n)).Select(v => v - 1).ToArray(),
            _ => throw new InvalidOperationException(),
        };

        var trainSigmas = TrainingSigmas();
        float[] sigmas;
        if (Config.UseKarrasSigmas)
        {
            var karras = KarrasSigmas.Sigmas(trainSigmas[0], trainSigmas[^1], n);
            var logSigmas = KarrasSigmas.LogOf(trainSigmas);
            timesteps = karras.Select(s => NumpyCompat.Round(KarrasSigmas.SigmaToT(s, logSigmas))).ToArray();
            sigmas = karras.Append(karras[^1]).Select(s => (float)s).ToArray();
        }
        else
        {
            float sigmaLast = trainSigmas[0];
            sigmas = NumpyCompat.InterpOnIndex(timesteps, trainSigmas).Select(s => (float)s).Append(sigmaLast).ToArray();
        }
        _sigmaArray = sigmas;
        SetSchedule(timesteps, sigmas);
        _x0Predictions.Clear();
        _lowerOrderNums = 0;
        _stepIndex = null;
    }

    /// <summary>num_train_timesteps minus the steps clipped by lambda_min_clipped.</summary>
    public int LastTimestep { get; private set; }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null)
    {
        RequireSchedule();
        int n = TimestepArray.Length;
        if (_stepIndex is null)
        {
            var matches = Enumerable.Range(0, n).Where(i => TimestepArray[i] == timestep).ToArray();
            _stepIndex = matches.Length == 0 ? n - 1 : matches.Length > 1 ? matches[1] : matches[0];
        }
        int i = _stepIndex.Value;
        bool lowerOrderFinal = i == n - 1 && (Config.EulerAtFinal || (Config.LowerOrderFinal && n < 15));

        using var scope = NewDisposeScope();
        var x0 = ConvertModelOutput(modelOutput, sample, _sigmaArray[i]);
        _x0Predictions.Add(x0);

        Tensor prev = Config.SolverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal
            ? FirstOrderUpdate(x0, sample, i)
            : SecondOrderUpdate(sample, i);
        if (_lowerOrderNums < Config.SolverOrder) _lowerOrderNums++;
        _stepIndex = i + 1;
        return prev.MoveToOuterDisposeScope();
    }

    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, float sigma)
    {
        var (alphaT, sigmaT) = AlphaSigma(sigma);
        return Config.PredictionType switch
        {
            PredictionType.Epsilon => (sample - sigmaT * modelOutput) / alphaT,
            PredictionType.Sample => modelOutput,
            PredictionType.VPrediction => alphaT * sample - sigmaT * modelOutput,
            _ => throw new InvalidOperationException(),
        };
    }

    /// <summary>alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t (float32 as in diffusers).</summary>
    private static (float Alpha, float Sigma) AlphaSigma(float sigma)
    {
        float alpha = 1f / MathF.Sqrt(sigma * sigma + 1f);
        return (alpha, sigma * alpha);
    }

    private static float Lambda(float alpha, float sigma) => MathF.Log(alpha) - MathF.Log(sigma);

    private Tensor FirstOrderUpdate(Tensor x0, Tensor sample, int i)
    {
        var (alphaT, sigmaT) = AlphaSigma(_sigmaArray[i + 1]);
        var (alphaS, sigmaS) = AlphaSigma(_sigmaArray[i]);
        float h = Lambda(alphaT, sigmaT) - Lambda(alphaS, sigmaS);
        return (sigmaT / sigmaS) * sample - (alphaT * (MathF.Exp(-h) - 1f)) * x0;
    }

    private Tensor SecondOrderUpdate(Tensor sample, int i)
    {
        var (alphaT, sigmaT) = AlphaSigma(_sigmaArray[i + 1]);
        var (alphaS0, sigmaS0) = AlphaSigma(_sigmaArray[i]);
        var (alphaS1, sigmaS1) = AlphaSigma(_sigmaArray[i - 1]);
        float lambdaT = Lambda(alphaT, sigmaT), lambdaS0 = Lambda(alphaS0, sigmaS0), lambdaS1 = Lambda(alphaS1, sigmaS1);
        Tensor m0 = _x0Predictions[^1], m1 = _x0Predictions[^2];
        float h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1;
        float r0 = h0 / h;
        var d1 = (1f / r0) * (m0 - m1);
        float expm = MathF.Exp(-h) - 1f;
        var x = (sigmaT / sigmaS0) * sample - (alphaT * expm) * m0;
        return _midpoint
            ? x - 0.5f * (alphaT * expm) * d1
            : x + (alphaT * (expm / h + 1f)) * d1;
    }

    public override void Dispose()
    {
        _x0Predictions.Dispose();
        base.Dispose();
    }
}
