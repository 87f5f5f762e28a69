using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// Plants a teacher: adds ΔW* = U·S·Vᵀ (general, rank k, singular values ρ·σ_max(W0)·κ^(−i/(k−1)), random U; V random,
/// or the k leading directions of each layer's input second moment when <c>inputMoments</c> is given) to the weight of
/// every Linear a target set selects, in place. Returns ΔW* per module path (float32, CPU).
/// </summary>
public static class PlantedUpdates
{
    public static IReadOnlyDictionary<string, Tensor> Plant(nn.Module root, InjectionTargets targets, int rank, double kappa, double relativeScale, Generator g,
                                                         IReadOnlyDictionary<string, Tensor>? inputMoments = null)
    {
        var planted = new Dictionary<string, Tensor>();
        using var _ = no_grad();
        foreach (var path in AdapterInjector.LinearPaths(root).Where(targets.Selects))
        {
            using var scope = NewDisposeScope();
            var linear = AdapterInjector.Find(root, path) as Linear ?? throw new InvalidOperationException($"{path} is not a plain Linear");
            var w = linear.weight!;
            double top = LowRankTargets.SingularValuesOf(w)[0];
            var delta = inputMoments is null
                ? LowRankTargets.Update((int)w.shape[0], (int)w.shape[1], rank, kappa, relativeScale * top, TargetKind.General, g, ScalarType.Float64)
                : LowRankTargets.UpdateAlong(LayerInputs.LeadingDirections(inputMoments[path], rank), (int)w.shape[0], kappa, relativeScale * top, g, ScalarType.Float64);
            w.add_(delta.to(w.dtype, w.device));
            planted[path] = delta.to_type(ScalarType.Float32).DetachFromDisposeScope();
        }
        return planted;
    }
}
