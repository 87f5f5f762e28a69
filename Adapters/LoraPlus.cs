using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters;

/// <summary>AdamW settings for adapter training. WeightDecay is explicit: TorchSharp's factory default is 0, PyTorch's 0.01.</summary>
public sealed record AdamWSettings(double LearningRate, double WeightDecay = 0.01, double Beta1 = 0.9, double Beta2 = 0.999, double Eps = 1e-8);

/// <summary>
/// LoRA+ (Hayou et al. 2024) as an optimizer setting: B matrices (and every 1-D adapter tensor, e.g. DoRA's magnitude)
/// get lr_B = λ · lr_A; A matrices and SingLoRA's single matrix get lr_A. λ = 1 is plain AdamW.
/// </summary>
public static class LoraPlus
{
    public const double DefaultLambda = 16;

    /// <summary>Splits trainable adapter tensors into the A group (lr) and the B group (λ · lr).</summary>
    public static (List<Parameter> A, List<Parameter> B) Groups(IEnumerable<AdapterLayer> layers)
    {
        var a = new List<Parameter>();
        var b = new List<Parameter>();
        var seen = new HashSet<IntPtr>();
        foreach (var layer in layers.SelectMany(l => l.Adapters))
            foreach (var p in layer.AdapterParameters())
            {
                if (!p.Tensor.requires_grad || !seen.Add(p.Tensor.Handle)) continue;
                bool toB = p.Role is AdapterParameterRole.B or AdapterParameterRole.Magnitude || p.Tensor.dim() == 1;
                (toB ? b : a).Add(p.Tensor);
            }
        return (a, b);
    }

    public static optim.Optimizer CreateAdamW(IEnumerable<AdapterLayer> layers, AdamWSettings settings, double lambda = DefaultLambda)
    {
        if (!(lambda > 0)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "LoRA+ ratio must be positive");
        var (a, b) = Groups(layers);
        if (a.Count + b.Count == 0) throw new InvalidOperationException("no trainable adapter parameters: inject adapters first");
        var groups = new List<AdamW.ParamGroup>();
        if (a.Count > 0) groups.Add(Group(a, settings, settings.LearningRate));
        if (b.Count > 0) groups.Add(Group(b, settings, settings.LearningRate * lambda));
        return optim.AdamW(groups, settings.LearningRate, settings.Beta1, settings.Beta2, settings.Eps, settings.WeightDecay);
    }

    private static AdamW.ParamGroup Group(IEnumerable<Parameter> ps, AdamWSettings s, double lr) =>
        new(ps, new AdamW.Options { LearningRate = lr, beta1 = s.Beta1, beta2 = s.Beta2, eps = s.Eps, weight_decay = s.WeightDecay });
}
