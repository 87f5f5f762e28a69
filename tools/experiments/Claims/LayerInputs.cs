using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// What a Linear layer actually sees: the uncentred second moment C = E[x·xᵀ] of its inputs (every token or pixel
/// row) over the forward passes <c>run</c> makes, collected with forward pre-hooks. A weight change ΔW acts on the
/// output only through ΔW·x, so ‖ΔW·C^½‖ is the part of ΔW a model's behaviour can reveal.
/// </summary>
public static class LayerInputs
{
    public static Dictionary<string, Tensor> SecondMoments(nn.Module root, IReadOnlyList<string> paths, Action run)
    {
        var sums = new Dictionary<string, Tensor>();
        var rows = new Dictionary<string, long>();
        var removers = new List<Action>();
        try
        {
            foreach (var path in paths)
            {
                var linear = AdapterInjector.Find(root, path) as Linear ?? throw new InvalidOperationException($"{path} is not a plain Linear");
                long dIn = linear.weight!.shape[1];
                sums[path] = zeros(dIn, dIn, ScalarType.Float64).DetachFromDisposeScope();
                rows[path] = 0;
                var remover = linear.register_forward_pre_hook((_, x) =>
                {
                    using var scope = NewDisposeScope();
                    using var __ = no_grad();
                    var flat = x.detach().reshape(-1, dIn).to_type(ScalarType.Float64).cpu();
                    sums[path].addmm_(flat.t(), flat);
                    rows[path] += flat.shape[0];
                    return x;
                });
                removers.Add(remover.remove);
            }
            run();
        }
        finally
        {
            foreach (var remove in removers) remove();
        }
        foreach (var path in paths)
        {
            if (rows[path] == 0) throw new InvalidOperationException($"{path} saw no input while collecting its second moment");
            sums[path].div_(rows[path]);
        }
        return sums;
    }

    /// <summary>The <paramref name="k"/> leading eigenvectors of a second moment (columns, d×k, orthonormal), largest first.</summary>
    public static Tensor LeadingDirections(Tensor moment, int k)
    {
        using var scope = NewDisposeScope();
        var (_, vectors) = linalg.eigh(moment);                  // ascending eigenvalues
        return vectors.narrow(1, vectors.shape[1] - k, k).flip(1).contiguous().MoveToOuterDisposeScope();
    }
}
