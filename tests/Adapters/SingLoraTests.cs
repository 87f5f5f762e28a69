using DiffusionPeft.Adapters;
using TorchSharp;
using static TorchSharp.torch;
using static DiffusionPeft.Tests.Adapters.AdapterTestUtil;

namespace DiffusionPeft.Tests.Adapters;

public sealed class SingLoraTests
{
    [Theory]
    [InlineData(6, 6)]
    [InlineData(4, 9)]
    [InlineData(9, 4)]
    public void DeltaWeightIsScaledAOutAInTransposed(int din, int dout)
    {
        using var scope = NewDisposeScope();
        manual_seed(21);
        var lin = MakeLinear(din, dout);
        var layer = (SingLoraLinear)Wrap(lin, new AdapterOptions { Method = AdapterMethod.SingLora, Rank = 3, Alpha = 6, RampSteps = 8 });
        layer.StepCount = 3;
        double s = 6.0 / 3, u = 3.0 / 8;
        var a = layer.singlora_A.detach();
        Assert.Equal([(long)Math.Max(din, dout), 3], a.shape);
        var expected = a[TensorIndex.Slice(0, dout)].mm(a[TensorIndex.Slice(0, din)].t()) * (s * u);
        var x = randn([5, din], ScalarType.Float64);
        var delta = layer.forward(x) - lin.forward(x);
        TensorAssert.Close(delta, x.mm(expected.t()), 1e-12, 1e-10, "forward − base = x ΔWᵀ");
        TensorAssert.Close(layer.DeltaWeight(), expected, 1e-12, 1e-10, "ΔW");
        if (din == dout) TensorAssert.Close(expected, expected.t(), 1e-14, 0, "square ΔW is symmetric");
        Assert.Equal(3L * Math.Max(din, dout), layer.AdapterParameters().Sum(p => p.Tensor.numel()));
    }

    [Fact]
    public void InitBoundAndScaleOption()
    {
        using var scope = NewDisposeScope();
        manual_seed(22);
        var lin = MakeLinear(300, 200);
        var a = ((SingLoraLinear)Wrap(lin, new AdapterOptions { Method = AdapterMethod.SingLora, Rank = 4 })).singlora_A;
        Assert.True(a.abs().max().item<double>() <= 0.5);                 // bound 1/sqrt(r)
        Assert.True(a.abs().max().item<double>() > 0.49);
        var b = ((SingLoraLinear)Wrap(lin, new AdapterOptions { Method = AdapterMethod.SingLora, Rank = 4, InitScale = 0.1 }, "b")).singlora_A;
        Assert.True(b.abs().max().item<double>() <= 0.05);
    }

    /// <summary>Three micro-batches per optimizer step: the ramp counts optimizer steps, and a reloaded state continues it.</summary>
    [Fact]
    public void RampAdvancesPerOptimizerStepNotPerForward()
    {
        using var scope = NewDisposeScope();
        manual_seed(23);
        var lin = MakeLinear(5, 5);
        var layer = (SingLoraLinear)Wrap(lin, new AdapterOptions { Method = AdapterMethod.SingLora, Rank = 2, Alpha = 2, RampSteps = 4 });
        var opt = LoraPlus.CreateAdamW([layer], new AdamWSettings(1e-2), lambda: 1);
        var x = randn([3, 5], ScalarType.Float64);
        Assert.Equal(0.0, layer.Ramp);
        for (int step = 1; step <= 6; step++)
        {
            opt.zero_grad();
            for (int micro = 0; micro < 3; micro++) (layer.forward(x).square().mean() / 3).backward();
            opt.step();
            AdapterLayer.OnOptimizerStep([layer], step);
            Assert.Equal(step, layer.StepCount);
            Assert.Equal(Math.Min(step / 4.0, 1.0), layer.Ramp, 12);
        }
        var state = layer.state_dict();
        Assert.Equal(6L, state["singlora_step"].item<long>());
        var fresh = (SingLoraLinear)Wrap(MakeLinear(5, 5), new AdapterOptions { Method = AdapterMethod.SingLora, Rank = 2, Alpha = 2, RampSteps = 4 });
        fresh.load_state_dict(state);
        Assert.Equal(6L, fresh.StepCount);
        TensorAssert.Close(fresh.forward(x), layer.forward(x), 0, 0, "reloaded layer");
    }
}
