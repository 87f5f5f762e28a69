using DiffusionPeft.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Adapters;

/// <summary>AdapterOptions.ParameterDType = Float32 on a bf16 base: fp32 adapter tensors and gradients, bf16 output equal to the fp32 computation on the same (bf16-rounded) base.</summary>
public sealed class Fp32AdaptersOnBf16BaseTests
{
    public static TheoryData<AdapterMethod> Methods => new(Enum.GetValues<AdapterMethod>());

    [Theory, MemberData(nameof(Methods))]
    public void BranchesRunInFp32AndTheOutputKeepsTheBaseDtype(AdapterMethod method)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var w = randn(24, 16).to_type(ScalarType.BFloat16);
        var b = randn(24).to_type(ScalarType.BFloat16);
        var options = new AdapterOptions { Method = method, Rank = 3, Alpha = 6, RampSteps = 0, ParameterDType = ScalarType.Float32 };
        var mixed = AdapterInjector.Create(options, new TorchSharp.Modules.Parameter(w.clone(), false), new TorchSharp.Modules.Parameter(b.clone(), false));
        var reference = AdapterInjector.Create(options with { ParameterDType = null }, new TorchSharp.Modules.Parameter(w.to_type(ScalarType.Float32), false),
            new TorchSharp.Modules.Parameter(b.to_type(ScalarType.Float32), false));
        using (no_grad())
            foreach (var (m, r) in mixed.AdapterParameters().Zip(reference.AdapterParameters()))
            {
                Assert.Equal(ScalarType.Float32, m.Tensor.dtype);
                m.Tensor.copy_(randn_like(m.Tensor) * 0.1 + (m.Role == AdapterParameterRole.Magnitude ? r.Tensor : zeros_like(r.Tensor)));
                r.Tensor.copy_(m.Tensor);
            }
        mixed.InvalidateCaches(); reference.InvalidateCaches();
        AdapterLayer.OnOptimizerStep([mixed, reference], 1);

        var x = randn(5, 16).to_type(ScalarType.BFloat16);
        var y = mixed.forward(x);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        var expected = reference.forward(x.to_type(ScalarType.Float32));
        TensorAssert.Close(y.to_type(ScalarType.Float32), expected, 0.05, 0.02, $"{method} output");

        y.to_type(ScalarType.Float32).square().sum().backward();
        foreach (var p in mixed.AdapterParameters())
        {
            Assert.Equal(ScalarType.Float32, p.Tensor.grad!.dtype);
            Assert.True(p.Tensor.grad!.abs().sum().item<float>() > 0, $"{method} {p.Name} has no gradient");
        }
    }
}
