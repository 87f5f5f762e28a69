using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// A frozen random layer W0 and a teacher W* = W0 + ΔW*. Data: x ~ N(0, I), y = W* x + ε with ε ~ N(0, σ²) per output,
/// σ² = <c>noiseFraction</c> · ‖ΔW*‖²_F / d_out, i.e. a fraction of the frozen base's population error. Reported loss
/// = MSE on a fixed noisy eval set / the frozen base's MSE on it: 1 for the base, and the floor is the noise
/// (<see cref="NoiseFloor"/>), not float round-off. Everything depends on the seed only, never on the method.
/// </summary>
public sealed class LinearProblem : IDisposable
{
    // Adapter init draws from torch's global generator: seed and build under one lock so parallel runs stay reproducible.
    private static readonly object InitLock = new();

    private readonly Tensor _xEval, _yEval;

    private LinearProblem(LayerShape shape, Tensor w0, Tensor delta, double noiseStd, Tensor xEval, Tensor yEval, double baseMse)
    {
        Shape = shape;
        W0 = w0;
        DeltaStar = delta;
        NoiseStd = noiseStd;
        _xEval = xEval;
        _yEval = yEval;
        BaseMse = baseMse;
    }

    public LayerShape Shape { get; }
    public Tensor W0 { get; }
    public Tensor DeltaStar { get; }
    public double NoiseStd { get; }
    public double BaseMse { get; }

    /// <summary>The relative loss of the teacher itself on the eval set: what no method can beat.</summary>
    public double NoiseFloor => NoiseStd * NoiseStd / BaseMse;

    public static LinearProblem Create(LayerShape shape, Tensor deltaStar, double noiseFraction, int seed, int evalSamples = 2048)
    {
        using var scope = NewDisposeScope();
        var dtype = deltaStar.dtype;
        var w0 = LowRankTargets.RandomWeight(shape.DOut, shape.DIn, new Generator((ulong)(1_000 + seed)), dtype);
        double noiseStd = Math.Sqrt(noiseFraction * deltaStar.square().sum().ToDouble() / shape.DOut);
        var g = new Generator((ulong)(900_000 + seed));
        var x = randn([evalSamples, shape.DIn], dtype: dtype, generator: g);
        var y = x.mm((w0 + deltaStar).t()) + randn([evalSamples, shape.DOut], dtype: dtype, generator: g) * noiseStd;
        double baseMse = nn.functional.mse_loss(x.mm(w0.t()), y).to_type(ScalarType.Float64).item<double>();
        var p = new LinearProblem(shape, w0.DetachFromDisposeScope(), deltaStar.clone().DetachFromDisposeScope(), noiseStd,
            x.DetachFromDisposeScope(), y.DetachFromDisposeScope(), baseMse);
        return p;
    }

    /// <summary>A fresh adapter of the library on a copy of W0, its random init drawn from a generator seeded with <paramref name="initSeed"/>.</summary>
    public AdapterLayer NewAdapter(AdapterOptions options, int initSeed)
    {
        lock (InitLock)
        {
            torch.manual_seed(10_000 + initSeed);
            var w = new Parameter(W0.clone(), requires_grad: false);
            return AdapterInjector.Create(options, w, null);
        }
    }

    /// <summary>A fresh batch: x ~ N(0, I), y = W* x + noise.</summary>
    public (Tensor X, Tensor Y) Batch(Generator g, int n)
    {
        var x = randn([n, Shape.DIn], dtype: W0.dtype, generator: g);
        Tensor y;
        using (no_grad()) y = x.mm((W0 + DeltaStar).t()) + randn([n, Shape.DOut], dtype: W0.dtype, generator: g) * NoiseStd;
        return (x, y);
    }

    public double RelativeLoss(AdapterLayer layer)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return nn.functional.mse_loss(layer.call(_xEval), _yEval).to_type(ScalarType.Float64).item<double>() / BaseMse;
    }

    public void Dispose()
    {
        W0.Dispose();
        DeltaStar.Dispose();
        _xEval.Dispose();
        _yEval.Dispose();
    }
}
