using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.AdapterMethods;

/// <summary>
/// A frozen random student with adapters and a teacher that differs from it by low-rank updates:
/// Linear: y = (W0 + ΔW*) x. MLP: y = (W2 + ΔW2*) tanh((W1 + ΔW1*) x), adapters on both layers.
/// x ~ N(0, I) and no label noise, so a relative loss of 0 is reachable by every method that can express ΔW*.
/// </summary>
public sealed class RegressionTask : IDisposable
{
    // Adapter init draws from torch's global generator: seed and build under one lock so parallel runs stay reproducible.
    private static readonly object InitLock = new();

    private readonly Tensor[] _teacher;
    private readonly Tensor[] _base;

    private RegressionTask(TaskKind kind, AdapterLayer[] layers, Tensor[] teacher, Tensor[] baseWeights, double psdFloor)
    {
        Kind = kind;
        Layers = layers;
        _teacher = teacher;
        _base = baseWeights;
        SingLoraFloor = psdFloor;
    }

    public TaskKind Kind { get; }
    public IReadOnlyList<AdapterLayer> Layers { get; }

    /// <summary>Linear task: the lowest relative loss SingLoRA can reach (best PSD rank-r approximation of ΔW*); NaN for the MLP.</summary>
    public double SingLoraFloor { get; }

    public long TrainableParameters => Layers.Sum(l => l.AdapterParameters().Sum(p => p.Tensor.numel()));

    /// <summary>The base weights and targets depend on the seed (and kind, κ), never on the method, so methods are compared on identical problems.</summary>
    public static RegressionTask Create(SweepConfig c, TaskKind task, TargetKind kind, double kappa, int seed, MethodSpec method)
    {
        using var scope = NewDisposeScope();
        int d = c.Dim, nLayers = task == TaskKind.Linear ? 1 : 2;
        var gBase = new Generator((ulong)(1000 + seed));
        var gTarget = new Generator((ulong)(100_000 + 1000 * seed + 10 * (int)kind + (int)Math.Round(Math.Log10(kappa) * 100) + 7 * (int)task));
        var baseW = new Tensor[nLayers];
        var teacher = new Tensor[nLayers];
        double floor = double.NaN;
        for (int i = 0; i < nLayers; i++)
        {
            baseW[i] = Targets.RandomWeight(d, d, gBase);
            var delta = Targets.LowRankUpdate(d, d, c.TargetRank, kappa, c.TargetScale, kind, gTarget);
            if (task == TaskKind.Linear) floor = Targets.PsdFloor(delta, c.AdapterRank);
            teacher[i] = baseW[i] + delta;
        }
        var layers = new AdapterLayer[nLayers];
        lock (InitLock)
        {
            torch.manual_seed(10_000 + seed);
            for (int i = 0; i < nLayers; i++)
            {
                var w = new Parameter(baseW[i].clone(), requires_grad: false);
                w.DetachFromDisposeScope();
                layers[i] = method.Create(w);
            }
        }
        foreach (var t in baseW.Concat(teacher)) t.DetachFromDisposeScope();
        return new RegressionTask(task, layers, teacher, baseW, floor);
    }

    public Tensor Student(Tensor x) => Kind == TaskKind.Linear ? Layers[0].call(x) : Layers[1].call(tanh(Layers[0].call(x)));

    public Tensor Teacher(Tensor x) => Apply(_teacher, x);

    /// <summary>The frozen model without adapters.</summary>
    public Tensor Base(Tensor x) => Apply(_base, x);

    private Tensor Apply(Tensor[] w, Tensor x) =>
        Kind == TaskKind.Linear ? nn.functional.linear(x, w[0]) : nn.functional.linear(tanh(nn.functional.linear(x, w[0])), w[1]);

    public void Dispose()
    {
        foreach (var l in Layers) l.Dispose();
        foreach (var t in _teacher.Concat(_base)) t.Dispose();
    }
}
