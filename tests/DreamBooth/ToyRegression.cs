using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.DreamBooth.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>
/// Linear regression y = x·w + b on 16 fixed points, with input noise drawn from the training RNG (so RNG state
/// matters for resume), two parameter groups (b at twice the LR, like LoRA+), and hooks to inject a crash or a NaN.
/// </summary>
internal sealed class ToyRegression : ITrainingTarget, ITrainingObjective, IDisposable
{
    public const int Items = 16;
    private readonly Tensor _x, _y;
    private readonly Parameter _w, _b;
    private readonly double _noise;

    public long? CrashAtStep { get; init; }
    public long? NanAtStep { get; init; }
    public List<long> RampCalls { get; } = [];
    public List<double> Losses { get; } = [];
    public string? FinalWrittenTo { get; private set; }

    public ToyRegression(double lr, double noise = 0.05)
    {
        _noise = noise;
        using var g = new Generator(123);
        _x = randn([Items, 4], generator: g);
        _y = _x.matmul(tensor(new float[] { 0.5f, -1f, 0.75f, 0.25f }, [4, 1])) + 0.3f;
        _w = new Parameter(zeros(4, 1));
        _b = new Parameter(zeros(1));
        ParameterGroups = [new("weights", [("w", _w)], lr), new("bias", [("b", _b)], 2 * lr)];
    }

    public IReadOnlyList<TrainableGroup> ParameterGroups { get; }
    public Tensor W => _w;
    public Tensor B => _b;

    public Tensor Loss(Batch batch, TrainingRng rng)
    {
        if (batch.Step == CrashAtStep) throw new SimulatedKill();
        var idx = tensor(batch.Items.Select(i => (long)i).ToArray());
        var x = _x.index_select(0, idx);
        if (_noise > 0) x = x + rng.Randn([batch.Items.Count, 4]) * _noise;
        var loss = nn.functional.mse_loss(x.matmul(_w) + _b, _y.index_select(0, idx));
        Losses.Add(loss.item<float>());
        return batch.Step == NanAtStep ? loss * float.NaN : loss;
    }

    public void OnOptimizerStep(long stepsTaken) => RampCalls.Add(stepsTaken);

    public void WriteFinal(string runDirectory, long stepsTaken)
    {
        FinalWrittenTo = runDirectory;
        SafetensorsWriter.Write(Path.Combine(runDirectory, "adapter.safetensors"), new Dictionary<string, Tensor> { ["w"] = _w, ["b"] = _b });
    }

    public void Dispose()
    {
        _x.Dispose(); _y.Dispose(); _w.Dispose(); _b.Dispose();
    }
}

internal sealed class SimulatedKill : Exception;
