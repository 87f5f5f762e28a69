using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Adapters;

internal static class AdapterTestUtil
{
    public static readonly AdapterMethod[] AllMethods = [AdapterMethod.Lora, AdapterMethod.Dora, AdapterMethod.SingLora, AdapterMethod.SdsLora];

    public static Linear MakeLinear(int dIn, int dOut, ScalarType dtype = ScalarType.Float64, bool bias = true)
    {
        var lin = nn.Linear(dIn, dOut, bias, dtype: dtype);
        using (no_grad()) lin.weight!.normal_(0, 1.0 / Math.Sqrt(dIn));
        return lin;
    }

    public static AdapterLayer Wrap(Linear lin, AdapterOptions options, string name = "default") =>
        AdapterInjector.Create(options, lin.weight!, lin.bias, name);

    /// <summary>Moves an adapter away from its init so that every tensor matters (B random, SingLoRA half-way up its ramp).</summary>
    public static void Perturb(AdapterLayer layer, double bStd = 0.3)
    {
        using var _ = no_grad();
        foreach (var p in layer.AdapterParameters())
            if (p.Role == AdapterParameterRole.B) p.Tensor.normal_(0, bStd);
            else if (p.Role == AdapterParameterRole.Magnitude) p.Tensor.mul_(rand_like(p.Tensor) + 0.5);
        if (layer is SingLoraLinear s) s.StepCount = Math.Max(1, s.Options.RampSteps / 2);
        layer.InvalidateCaches();
    }

    /// <summary>Central finite differences of a scalar function with respect to every element of <paramref name="p"/>.</summary>
    public static Tensor FiniteDifference(Func<double> loss, Tensor p, double eps = 1e-6)
    {
        using var _ = no_grad();
        var grad = zeros_like(p);
        var flat = p.view(-1);
        var gflat = grad.view(-1);
        for (long i = 0; i < flat.numel(); i++)
        {
            double orig = flat[i].item<double>();
            flat[i] = orig + eps;
            double up = loss();
            flat[i] = orig - eps;
            double down = loss();
            flat[i] = orig;
            gflat[i] = (up - down) / (2 * eps);
        }
        return grad;
    }
}
