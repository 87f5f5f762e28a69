using DiffusionPeft.Adapters;
using TorchSharp;
using static TorchSharp.torch;
using static DiffusionPeft.Tests.Adapters.AdapterTestUtil;

namespace DiffusionPeft.Tests.Adapters;

public sealed class AdapterLayerTests
{
    public static TheoryData<AdapterMethod> Methods => new(AllMethods);

    private static AdapterOptions Opts(AdapterMethod m, int rank = 3, double alpha = 5) =>
        new() { Method = m, Rank = rank, Alpha = alpha, RampSteps = 10 };

    [Theory, MemberData(nameof(Methods))]
    public void OutputEqualsBaseAtInit(AdapterMethod method)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        foreach (var (din, dout) in new[] { (7, 7), (5, 9), (9, 5) })
        {
            var lin = MakeLinear(din, dout, ScalarType.Float32);
            var x = randn([2, 4, din]);
            var expected = lin.forward(x).detach();
            var layer = Wrap(lin, Opts(method));
            var got = layer.forward(x);
            TensorAssert.Close(got, expected, 1e-6, 1e-6, $"{method} {din}->{dout} at init");
            Assert.Equal([2L, 4, dout], got.shape);
            // the adapter is not a no-op by construction: A is random (B or the ramp is what makes it zero)
            Assert.Contains(layer.AdapterParameters(), p => p.Tensor.abs().sum().item<float>() > 0);
        }
    }

    [Theory, MemberData(nameof(Methods))]
    public void MergedEqualsUnmergedAndUnmergeRestoresWeight(AdapterMethod method)
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var lin = MakeLinear(6, 10, ScalarType.Float32);
        var w0 = lin.weight!.detach().clone();
        var layer = Wrap(lin, Opts(method));
        Perturb(layer);
        layer.Scale = 0.7;
        var x = randn([5, 6]);
        var unmerged = layer.forward(x).detach();
        var baseOut = nn.functional.linear(x, w0, lin.bias).detach();
        Assert.True((unmerged - baseOut).abs().max().item<float>() > 1e-2, "the perturbed adapter changes the output");
        layer.Merge();
        Assert.True(layer.IsMerged);
        Assert.True((layer.weight - w0).abs().max().item<float>() > 1e-3, "merging changed the weight");
        TensorAssert.Close(layer.forward(x), unmerged, 1e-5, 1e-5, $"{method} merged vs unmerged");
        if (layer is SingLoraLinear s) s.StepCount++;   // the ramp moves while merged: unmerge still removes what merge added
        layer.Unmerge();
        TensorAssert.Close(layer.weight, w0, 1e-6, 1e-6, $"{method} weight after unmerge");
        TensorAssert.Close(layer.forward(x), method == AdapterMethod.SingLora ? layer.forward(x) : unmerged, 1e-5, 1e-5, "unmerged again");
        Assert.Throws<InvalidOperationException>(() => { layer.Merge(); layer.Enabled = false; });
        layer.Unmerge();
        layer.Enabled = false;
        TensorAssert.Close(layer.forward(x), baseOut, 1e-6, 1e-6, $"{method} disabled equals base");
    }

    [Theory, MemberData(nameof(Methods))]
    public void DeltaWeightMatchesForward(AdapterMethod method)
    {
        using var scope = NewDisposeScope();
        manual_seed(13);
        var lin = MakeLinear(6, 4);
        var w0 = lin.weight!.detach().clone();
        var layer = Wrap(lin, Opts(method));
        Perturb(layer);
        var x = randn([3, 6], ScalarType.Float64);
        var expected = nn.functional.linear(x, w0 + layer.DeltaWeight(), lin.bias);
        TensorAssert.Close(layer.forward(x), expected, 1e-12, 1e-10, $"{method}: forward = (W0 + ΔW) x + b");
    }

    /// <summary>Every adapter tensor's gradient against float64 central differences of the layer's own loss
    /// (DoRA: with the row norm held at its value, which is what the method's backward differentiates).</summary>
    [Theory]
    [InlineData(AdapterMethod.Lora, false)]
    [InlineData(AdapterMethod.Lora, true)]
    [InlineData(AdapterMethod.Dora, false)]
    [InlineData(AdapterMethod.SingLora, false)]
    public void GradientsMatchFiniteDifferences(AdapterMethod method, bool rsLora)
    {
        using var scope = NewDisposeScope();
        manual_seed(14);
        foreach (var (din, dout) in new[] { (5, 5), (4, 7), (7, 4) })
        {
            var lin = MakeLinear(din, dout);
            var layer = Wrap(lin, Opts(rsLora ? AdapterMethod.RsLora : method, rank: 2, alpha: 3));
            Perturb(layer);
            var x = randn([3, din], ScalarType.Float64);
            var r = randn([3, dout], ScalarType.Float64);
            Func<Tensor> forward = () => layer.forward(x);
            if (layer is DoraLinear dora)
            {
                var n = dora.RowNorm(dora.Scaling);
                forward = () => (dora.lora_magnitude_vector / n) * nn.functional.linear(x, lin.weight!.detach() + dora.lora_B.mm(dora.lora_A) * dora.Scaling) + lin.bias!;
                TensorAssert.Close(layer.forward(x), forward(), 1e-12, 1e-10, "DoRA forward = m/||V|| (W0 + sBA) x + b");
                TensorAssert.Close(n, linalg.vector_norm(lin.weight!.detach() + (dora.lora_B.mm(dora.lora_A) * dora.Scaling).detach(), 2, [1L], false), 1e-12, 1e-10, "DoRA row norm without forming V");
            }
            var loss = (layer.forward(x).tanh() * r).sum();
            loss.backward();
            foreach (var p in layer.AdapterParameters())
            {
                var fd = FiniteDifference(() => (forward().tanh() * r).sum().item<double>(), p.Tensor);
                TensorAssert.Close(p.Tensor.grad!, fd, 1e-7, 1e-6, $"{method} {din}->{dout} d/d{p.Name}");
            }
            Assert.Null(lin.weight!.grad);
        }
    }

    [Fact]
    public void RsLoraAndGaussianInit()
    {
        using var scope = NewDisposeScope();
        manual_seed(15);
        var lin = MakeLinear(400, 8);
        var lora = (LoraLinear)Wrap(lin, new AdapterOptions { Rank = 16, Alpha = 8 });
        Assert.Equal(0.5, lora.Scaling, 12);
        Assert.Equal(2.0, ((LoraLinear)Wrap(MakeLinear(4, 4), new AdapterOptions { Method = AdapterMethod.RsLora, Rank = 16, Alpha = 8 })).Scaling, 12);
        // kaiming-uniform(a = sqrt 5): U(-1/sqrt(d_in), 1/sqrt(d_in)), std = 1/sqrt(3 d_in)
        Assert.True(lora.lora_A.abs().max().item<double>() <= 1 / Math.Sqrt(400));
        Assert.Equal(1 / Math.Sqrt(3 * 400), lora.lora_A.std().item<double>(), 0.003);
        Assert.Equal(0, lora.lora_B.abs().max().item<double>());
        var g = (LoraLinear)Wrap(lin, new AdapterOptions { Rank = 4, Alpha = 4, Init = LoraInit.Gaussian });
        Assert.Equal(0.25, g.lora_A.std().item<double>(), 0.02);
    }

    [Fact]
    public void DropoutActsOnTheBranchInputOnlyInTraining()
    {
        using var scope = NewDisposeScope();
        manual_seed(16);
        var lin = MakeLinear(8, 8);
        var layer = Wrap(lin, new AdapterOptions { Rank = 2, Alpha = 2, Dropout = 0.5 });
        Perturb(layer);
        var x = randn([64, 8], ScalarType.Float64);
        layer.eval();
        var evalOut = layer.forward(x);
        TensorAssert.Close(evalOut, layer.forward(x), 0, 0, "eval is deterministic");
        layer.train();
        var trainOut = layer.forward(x);
        Assert.True((trainOut - evalOut).abs().max().item<double>() > 1e-3);
        // the base path never sees dropout: train output minus branch of the dropped input is W x + b
        var baseOut = lin.forward(x);
        var branchEval = evalOut - baseOut;
        Assert.True(branchEval.abs().max().item<double>() > 1e-3);
    }

    [Fact]
    public void StackedAdaptersAddWithTheirWeights()
    {
        using var scope = NewDisposeScope();
        manual_seed(17);
        var lin = MakeLinear(6, 5);
        var w0 = lin.weight!.detach().clone();
        var host = Wrap(lin, new AdapterOptions { Rank = 2, Alpha = 2 }, "first");
        var second = AdapterInjector.Create(new AdapterOptions { Rank = 3, Alpha = 6 }, host.weight, host.bias, "second", ownsBase: false);
        host.Stack(second);
        Perturb(host); Perturb(second);
        host.Scale = 0.5; second.Scale = 2.0;
        var x = randn([4, 6], ScalarType.Float64);
        var expected = nn.functional.linear(x, w0 + host.DeltaWeight() + second.DeltaWeight(), lin.bias);
        TensorAssert.Close(host.forward(x), expected, 1e-12, 1e-10, "two LoRAs with weights");
        Assert.Equal(new HashSet<string> { "weight", "bias", "lora_A", "lora_B", "second.lora_A", "second.lora_B" }, host.state_dict().Keys.ToHashSet());
        second.Enabled = false;
        TensorAssert.Close(host.forward(x), nn.functional.linear(x, w0 + host.DeltaWeight(), lin.bias), 1e-12, 1e-10, "second disabled");
        second.Enabled = true;
        var unmerged = host.forward(x).detach();
        host.MergeAll();
        TensorAssert.Close(host.forward(x), unmerged, 1e-10, 1e-10, "both merged");
        host.UnmergeAll();
        TensorAssert.Close(host.weight, w0, 1e-12, 1e-10, "unmerge all");
        Assert.Throws<ArgumentException>(() => host.Stack(AdapterInjector.Create(new AdapterOptions(), host.weight, host.bias, "second", ownsBase: false)));
        Assert.Throws<ArgumentException>(() => host.Stack(AdapterInjector.Create(new AdapterOptions { Method = AdapterMethod.Dora }, host.weight, host.bias, "d", ownsBase: false)));
    }

    [Fact]
    public void LoraStackedOnDoraMergesConsistently()
    {
        using var scope = NewDisposeScope();
        manual_seed(18);
        var lin = MakeLinear(6, 5);
        var w0 = lin.weight!.detach().clone();
        var dora = Wrap(lin, new AdapterOptions { Method = AdapterMethod.Dora, Rank = 2, Alpha = 2 });
        var lora = AdapterInjector.Create(new AdapterOptions { Rank = 2, Alpha = 4 }, dora.weight, dora.bias, "extra", ownsBase: false);
        dora.Stack(lora);
        Perturb(dora); Perturb(lora);
        var x = randn([4, 6], ScalarType.Float64);
        var unmerged = dora.forward(x).detach();
        Assert.Throws<InvalidOperationException>(() => lora.Merge());
        dora.MergeAll();
        TensorAssert.Close(dora.forward(x), unmerged, 1e-10, 1e-10, "DoRA + LoRA merged");
        Assert.Throws<InvalidOperationException>(() => dora.Unmerge());
        dora.UnmergeAll();
        TensorAssert.Close(dora.weight, w0, 1e-12, 1e-10, "unmerge all");
    }
}
