using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// Mixed precision's fp32 master weights (diffusers' <c>--mixed_precision bf16</c>): a bf16 model computes forward and
/// backward, each micro-batch's bf16 gradients are summed into fp32 masters, the optimizer updates the masters, and they
/// are copied back into the model (bf16 weights alone would round most small updates away). The optimizer, the
/// checkpoints and the written weights hold the masters.
/// </summary>
public sealed class MasterWeights : IDisposable
{
    private readonly (Parameter Model, Parameter Master)[] _pairs;

    /// <param name="weights">The model's bf16 weights, by name.</param>
    /// <param name="fp32Start">fp32 values to start the masters from, by name (a checkpoint's, not their bf16 rounding;
    /// copied); a weight not in it starts from its bf16 value widened.</param>
    public MasterWeights(IEnumerable<(string Name, Parameter Weight)> weights, IReadOnlyDictionary<string, Tensor>? fp32Start = null)
    {
        var pairs = new List<(Parameter, Parameter)>();
        var masters = new List<(string, Parameter)>();
        try
        {
            foreach (var (name, weight) in weights)
            {
                var start = fp32Start is not null && fp32Start.TryGetValue(name, out var w) ? w : weight;
                if (!start.shape.SequenceEqual(weight.shape))
                    throw new ArgumentException($"{name}: the fp32 weights are [{string.Join(", ", start.shape)}], the model's [{string.Join(", ", weight.shape)}]");
                Tensor value;
                using (var scope = NewDisposeScope())   // the intermediate handles
                    value = start.detach().to(ScalarType.Float32, weight.device).clone().DetachFromDisposeScope();
                var master = new Parameter(value, requires_grad: true);
                pairs.Add((weight, master));
                masters.Add((name, master));
            }
        }
        catch
        {
            foreach (var (_, master) in pairs) master.Dispose();
            throw;
        }
        _pairs = pairs.ToArray();
        _byName = masters.ToDictionary(m => m.Item1, m => m.Item2);
    }

    private readonly Dictionary<string, Parameter> _byName;

    /// <summary>The fp32 master of the model weight named <paramref name="name"/>: what the optimizer trains in its place.</summary>
    public Parameter MasterOf(string name) =>
        _byName.TryGetValue(name, out var master) ? master : throw new KeyNotFoundException($"no master weight for {name}");

    /// <summary>Whether the model weight named <paramref name="name"/> trains on a master.</summary>
    public bool Holds(string name) => _byName.ContainsKey(name);

    /// <summary>Adds each weight's bf16 gradient into its master's fp32 one (so accumulation sums in fp32, as with
    /// diffusers' fp32 parameters) and clears it (the optimizer clears only the masters').</summary>
    public void AfterBackward()
    {
        using var _ = no_grad();
        foreach (var (weight, master) in _pairs)
        {
            if (weight.grad is not { } g) continue;
            if (master.grad is { } m) m.add_(g);
            else master.grad = g.to_type(ScalarType.Float32);
            g.zero_();
        }
    }

    /// <summary>Copies the masters into the model's bf16 weights (after a step, a resume, or the weight average swapped in or out).</summary>
    public void CopyToModel()
    {
        using var _ = no_grad();
        foreach (var (weight, master) in _pairs) weight.copy_(master);
    }

    /// <summary>Frees the masters; the model is the caller's.</summary>
    public void Dispose()
    {
        foreach (var (_, master) in _pairs) master.Dispose();
    }
}
