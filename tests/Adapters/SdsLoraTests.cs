using DiffusionPeft.Adapters;
using TorchSharp;
using static TorchSharp.torch;
using static DiffusionPeft.Tests.Adapters.AdapterTestUtil;

namespace DiffusionPeft.Tests.Adapters;

public sealed class SdsLoraTests
{
    private static (SdsLoraLinear Layer, Tensor X, Tensor R) Setup(int din, int dout, bool zeroB, long seed = 31)
    {
        manual_seed(seed);
        var lin = MakeLinear(din, dout);
        var layer = (SdsLoraLinear)Wrap(lin, new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = 3, Alpha = 4.5 });
        if (!zeroB) Perturb(layer);
        var x = randn([2, 4, din], ScalarType.Float64).requires_grad_(true);
        var r = randn([2, 4, dout], ScalarType.Float64);
        return (layer, x, r);
    }

    private static Tensor Loss(Tensor y, Tensor r) => (y.tanh() * r).sum();

    /// <summary>G = dL/dW of the full weight W0 + s B A, computed on a plain weight that requires grad.</summary>
    private static Tensor FullWeightGradient(SdsLoraLinear layer, Tensor x, Tensor r)
    {
        var w = (layer.weight.detach() + layer.lora_B.detach().mm(layer.lora_A.detach()) * layer.Scaling).requires_grad_(true);
        Loss(nn.functional.linear(x.detach(), w, layer.bias), r).backward();
        return w.grad!;
    }

    /// <summary>Reference basis: Householder QR, signs fixed so that diag(R) > 0, negligible columns zeroed.</summary>
    private static Tensor Basis(Tensor m)
    {
        var (q, rr) = linalg.qr(m);
        var diag = rr.diagonal();
        var d = diag.abs();
        return q * diag.sign() * (d > d.max() * 1e-6).logical_and(d > 0).to_type(q.dtype);
    }

    /// <summary>
    /// methods.md's detach formulation, the reference the layer's routes are held to: value s B A x, gradients
    /// s G Q_A and s Q_Bᵀ G: y = W0 x + b + s [Bd (Ad x) + (B − Bd)(Q_Aᵀ x) + Q_B ((A − Ad) x)] with the layer's own bases.
    /// </summary>
    private static Tensor MethodsMdForward(SdsLoraLinear layer, Tensor x)
    {
        var (qa, qb) = layer.Bases();
        var a = layer.lora_A;
        var b = layer.lora_B;
        var (ad, bd) = (a.detach(), b.detach());
        double s = layer.Scaling;
        var y = nn.functional.linear(x, layer.weight, layer.bias);
        return y + s * (nn.functional.linear(nn.functional.linear(x, ad), bd)
                        + nn.functional.linear(x.matmul(qa), b - bd)
                        + nn.functional.linear(nn.functional.linear(x, a - ad), qb));
    }

    [Fact]
    public void BasesHavePositiveRDiagonal()
    {
        using var scope = NewDisposeScope();
        var (layer, _, _) = Setup(9, 5, false, seed: 36);
        var (qa, qb) = layer.Bases();
        Assert.True((qa.t().mm(layer.lora_A.detach().t()).diagonal() > 0).all().item<bool>(), "R_A = Q_Aᵀ Aᵀ has a positive diagonal");
        Assert.True((qb.t().mm(layer.lora_B.detach()).diagonal() > 0).all().item<bool>(), "R_B = Q_Bᵀ B has a positive diagonal");
        TensorAssert.Close(qa.t().mm(qa), eye(3, dtype: ScalarType.Float64), 1e-14, 0, "Q_A orthonormal");
        TensorAssert.Close(qa.mm(qa.t()).mm(layer.lora_A.detach().t()), layer.lora_A.detach().t(), 1e-12, 1e-12, "Q_A spans Aᵀ");
    }

    [Fact]
    public void GradientsAreProjectedFullGradients()
    {
        using var scope = NewDisposeScope();
        foreach (var (din, dout) in new[] { (7, 7), (5, 9), (9, 5) })
            foreach (var (zeroB, dependentB) in new[] { (false, false), (true, false), (false, true) })
            {
                var (layer, x, r) = Setup(din, dout, zeroB);
                if (dependentB)
                    using (no_grad()) layer.lora_B[TensorIndex.Colon, 1] = layer.lora_B[TensorIndex.Colon, 0] * 2;   // rank 2: a zeroed Q_B column
                layer.InvalidateCaches();
                layer.Bases();
                // R⁻¹ (reparameterized) route when both R are usable (B = 0 included), the custom function otherwise
                Assert.Equal(!dependentB, layer.UsesInverseRoute);
                var g = FullWeightGradient(layer, x, r);
                Loss(layer.forward(x), r).backward();
                double s = layer.Scaling;
                var qa = Basis(layer.lora_A.detach().t());
                var qb = Basis(layer.lora_B.detach());
                string what = $"{din}->{dout} zeroB={zeroB} dependentB={dependentB}";
                TensorAssert.Close(layer.lora_B.grad!, g.mm(qa) * s, 1e-12, 1e-10, what + " dL/dB = s G Q_A");
                TensorAssert.Close(layer.lora_A.grad!, qb.t().mm(g) * s, 1e-12, 1e-10, what + " dL/dA = s Q_Bᵀ G");
                if (zeroB) Assert.Equal(0.0, layer.lora_A.grad!.abs().max().item<double>());
                // the input gradient is the true one: compare with plain LoRA holding the same tensors
                var lora = (LoraLinear)Wrap(MakeLinear(din, dout), new AdapterOptions { Rank = 3, Alpha = 4.5 });
                using (no_grad())
                {
                    lora.weight.copy_(layer.weight); lora.bias!.copy_(layer.bias!);
                    lora.lora_A.copy_(layer.lora_A); lora.lora_B.copy_(layer.lora_B);
                }
                var x2 = x.detach().clone().requires_grad_(true);
                var yLora = lora.forward(x2);
                TensorAssert.Close(layer.forward(x), yLora, 1e-12, 1e-10, what + " forward value = LoRA's");
                if (layer.UsesInverseRoute)
                    Assert.True(layer.forward(x).eq(yLora).all().item<bool>(), what + ": the reparameterized factors equal A and B bit for bit");
                Loss(yLora, r).backward();
                TensorAssert.Close(x.grad!, x2.grad!, 1e-12, 1e-10, what + " dL/dx");
            }
    }

    /// <summary>Both routes (R⁻¹ reparameterization, and the custom function where R_B is singular) equal methods.md's formulation.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BothRoutesEqualTheMethodsMdFormulation(bool singularB)
    {
        using var scope = NewDisposeScope();
        var (layer, x1, r) = Setup(6, 8, false, seed: 32);
        if (singularB)
            using (no_grad()) layer.lora_B[TensorIndex.Colon, 2] = layer.lora_B[TensorIndex.Colon, 1] * -3;
        layer.InvalidateCaches();
        Assert.Equal(!singularB, layer.UsesInverseRoute);
        Loss(layer.forward(x1), r).backward();
        var (gA, gB) = (layer.lora_A.grad!.clone(), layer.lora_B.grad!.clone());
        layer.lora_A.grad!.zero_();
        layer.lora_B.grad!.zero_();
        var x2 = x1.detach().clone().requires_grad_(true);
        Loss(MethodsMdForward(layer, x2), r).backward();
        TensorAssert.Close(gA, layer.lora_A.grad!, 1e-13, 1e-11, "dL/dA");
        TensorAssert.Close(gB, layer.lora_B.grad!, 1e-13, 1e-11, "dL/dB");
        TensorAssert.Close(x1.grad!, x2.grad!, 1e-13, 1e-11, "dL/dx");
    }

    /// <summary>OnOptimizerStep's batched QR (one per shape) gives the bases each layer computes alone, zero-B columns included.</summary>
    [Fact]
    public void BatchedBasesEqualPerLayerBases()
    {
        using var scope = NewDisposeScope();
        var layers = new List<SdsLoraLinear>();
        foreach (var (din, dout, zeroB, seed) in new[] { (6, 5, false, 1L), (6, 5, true, 2L), (6, 5, false, 3L), (4, 7, false, 4L) })
            layers.Add(Setup(din, dout, zeroB, seed).Layer);
        var single = layers.Select(l => { l.InvalidateCaches(); var (a, b) = l.Bases(); return (a.clone(), b.clone()); }).ToList();
        AdapterLayer.OnOptimizerStep(layers, 1);
        for (int i = 0; i < layers.Count; i++)
        {
            var (a, b) = layers[i].Bases();
            TensorAssert.Close(a, single[i].Item1, 1e-14, 1e-12, $"layer {i} Q_A");
            TensorAssert.Close(b, single[i].Item2, 1e-14, 1e-12, $"layer {i} Q_B");
        }
        Assert.Equal(0.0, layers[1].Bases().QB.abs().max().item<double>());
        TensorAssert.Close(layers[0].Bases().QA.t().mm(layers[0].Bases().QA), eye(3, dtype: ScalarType.Float64), 1e-14, 0, "orthonormal");
    }

    /// <summary>(B M, M⁻¹ A) leaves the forward and the spanned subspaces unchanged: SDS-LoRA's gradients keep their
    /// singular values, LoRA's change with M.</summary>
    [Theory]
    [InlineData(AdapterMethod.SdsLora)]
    [InlineData(AdapterMethod.Lora)]
    public void ReparameterisationInvariance(AdapterMethod method)
    {
        using var scope = NewDisposeScope();
        manual_seed(33);
        var lin = MakeLinear(8, 6);
        var x = randn([10, 8], ScalarType.Float64);
        var r = randn([10, 6], ScalarType.Float64);
        var m = randn([3, 3], ScalarType.Float64) + eye(3, dtype: ScalarType.Float64) * 2;
        var minv = linalg.inv(m);
        var l1 = (LowRankPairLayer)Wrap(lin, new AdapterOptions { Method = method, Rank = 3, Alpha = 3 });
        Perturb(l1);
        var l2 = (LowRankPairLayer)AdapterInjector.Create(new AdapterOptions { Method = method, Rank = 3, Alpha = 3 }, lin.weight!, lin.bias);
        using (no_grad())
        {
            l2.lora_B.copy_(l1.lora_B.mm(m));
            l2.lora_A.copy_(minv.mm(l1.lora_A));
        }
        var y1 = l1.forward(x);
        TensorAssert.Close(l2.forward(x), y1, 1e-11, 1e-9, "same forward");
        Loss(y1, r).backward();
        Loss(l2.forward(x), r).backward();
        var svB = (linalg.svdvals(l1.lora_B.grad!), linalg.svdvals(l2.lora_B.grad!));
        var svA = (linalg.svdvals(l1.lora_A.grad!), linalg.svdvals(l2.lora_A.grad!));
        if (method == AdapterMethod.SdsLora)
        {
            TensorAssert.Close(svB.Item2, svB.Item1, 1e-11, 1e-9, "singular values of dL/dB");
            TensorAssert.Close(svA.Item2, svA.Item1, 1e-11, 1e-9, "singular values of dL/dA");
        }
        else
        {
            Assert.True((svB.Item2 - svB.Item1).abs().max().item<double>() > 1e-3, "LoRA's dL/dB changes with M");
            Assert.True((svA.Item2 - svA.Item1).abs().max().item<double>() > 1e-3, "LoRA's dL/dA changes with M");
        }
    }

    /// <summary>The bases are computed once per optimizer step: micro-batches share them, OnOptimizerStep refreshes them.</summary>
    [Fact]
    public void BasesRefreshAfterEachOptimizerStep()
    {
        using var scope = NewDisposeScope();
        var (layer, x, r) = Setup(6, 5, zeroB: true, seed: 34);
        var opt = LoraPlus.CreateAdamW([layer], new AdamWSettings(1e-2));
        for (int step = 0; step < 3; step++)
        {
            opt.zero_grad();
            var g = FullWeightGradient(layer, x, r) * 0;
            for (int micro = 0; micro < 2; micro++)
            {
                g += FullWeightGradient(layer, x, r);
                Loss(layer.forward(x), r).backward();
            }
            var s = layer.Scaling;
            TensorAssert.Close(layer.lora_B.grad!, g.mm(Basis(layer.lora_A.detach().t())) * s, 1e-11, 1e-9, $"step {step} dL/dB");
            TensorAssert.Close(layer.lora_A.grad!, Basis(layer.lora_B.detach()).t().mm(g) * s, 1e-11, 1e-9, $"step {step} dL/dA");
            opt.step();
            AdapterLayer.OnOptimizerStep([layer], step + 1);
        }
        Assert.True(layer.lora_B.abs().max().item<double>() > 0);
    }

    /// <summary>
    /// The polar basis (Q = U Vᵀ): gradients are s G Q_A and s Q_Bᵀ G for that Q through the R⁻¹ route, and each is a
    /// descent direction: its inner product with LoRA's gradient is non-negative (LoRA's = SDS's × PSD H).
    /// </summary>
    [Fact]
    public void PolarBasisGivesProjectedGradientsThatAlwaysDescend()
    {
        using var scope = NewDisposeScope();
        for (long seed = 40; seed < 46; seed++)
        {
            manual_seed(seed);
            var lin = MakeLinear(7, 5);
            var layer = (SdsLoraLinear)Wrap(lin, new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = 3, Alpha = 4.5, SdsBasis = SdsBasis.Polar });
            Perturb(layer);
            var x = randn([2, 4, 7], ScalarType.Float64).requires_grad_(true);
            var r = randn([2, 4, 5], ScalarType.Float64);
            var g = FullWeightGradient(layer, x, r);
            Loss(layer.forward(x), r).backward();
            var (u, _, vh) = linalg.svd(layer.lora_A.detach().t(), fullMatrices: false);
            var qa = u.mm(vh);
            (u, _, vh) = linalg.svd(layer.lora_B.detach(), fullMatrices: false);
            var qb = u.mm(vh);
            var (got_qa, got_qb) = layer.Bases();
            TensorAssert.Close(got_qa, qa, 1e-12, 1e-10, "Q_A is the polar factor of Aᵀ");
            TensorAssert.Close(got_qb, qb, 1e-12, 1e-10, "Q_B is the polar factor of B");
            TensorAssert.Close(layer.lora_B.grad!, g.mm(qa) * layer.Scaling, 1e-10, 1e-8, "dL/dB = s G Q_A");
            TensorAssert.Close(layer.lora_A.grad!, qb.t().mm(g) * layer.Scaling, 1e-10, 1e-8, "dL/dA = s Q_Bᵀ G");
            var loraB = g.mm(layer.lora_A.detach().t()) * layer.Scaling;
            var loraA = layer.lora_B.detach().t().mm(g) * layer.Scaling;
            Assert.True((layer.lora_B.grad! * loraB).sum().item<double>() >= 0, $"seed {seed}: dL/dB is not a descent direction");
            Assert.True((layer.lora_A.grad! * loraA).sum().item<double>() >= 0, $"seed {seed}: dL/dA is not a descent direction");
        }
    }

    /// <summary>
    /// float32 layers take the float64 Gram/Cholesky route to their bases: Q_A and Q_B equal float64 Householder bases
    /// to float32 precision, in one batched group and alone; a B = 0 layer in the same group (Cholesky fails) falls back
    /// to Householder and keeps zeroed Q_B columns and the R⁻¹ route. Gradients are s G Q_A and s Q_Bᵀ G in float32.
    /// </summary>
    [Fact]
    public void Float32BasesMatchFloat64Householder()
    {
        using var scope = NewDisposeScope();
        manual_seed(50);
        var layers = new List<SdsLoraLinear>();
        foreach (var (din, dout, zeroB) in new[] { (48, 32, false), (48, 32, false), (32, 64, false), (32, 64, true), (32, 64, false) })
        {
            var layer = (SdsLoraLinear)Wrap(MakeLinear(din, dout, ScalarType.Float32), new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = 4, Alpha = 4 });
            if (!zeroB) Perturb(layer);
            layers.Add(layer);
        }
        SdsLoraLinear.RefreshBases(layers);
        for (int i = 0; i < layers.Count; i++)
        {
            var l = layers[i];
            var (qa, qb) = l.Bases();
            Assert.Equal(ScalarType.Float32, qa.dtype);
            TensorAssert.Close(qa.to_type(ScalarType.Float64), Basis(l.lora_A.detach().t().to_type(ScalarType.Float64)), 2e-6, 0, $"layer {i} Q_A");
            TensorAssert.Close(qb.to_type(ScalarType.Float64), Basis(l.lora_B.detach().to_type(ScalarType.Float64)), 2e-6, 0, $"layer {i} Q_B");
            Assert.True(l.UsesInverseRoute, $"layer {i} uses the R⁻¹ route");
        }
        Assert.Equal(0.0, layers[3].Bases().QB.abs().max().item<float>());

        var probe = layers[2];
        var x = randn([3, 5, 32]).requires_grad_(true);
        var r = randn([3, 5, 64]);
        var w = (probe.weight.detach() + probe.lora_B.detach().mm(probe.lora_A.detach()) * probe.Scaling).requires_grad_(true);
        Loss(nn.functional.linear(x.detach(), w, probe.bias), r).backward();
        Loss(probe.forward(x), r).backward();
        var (pqa, pqb) = probe.Bases();
        TensorAssert.Close(probe.lora_B.grad!, w.grad!.mm(pqa) * probe.Scaling, 1e-5, 1e-4, "float32 dL/dB = s G Q_A");
        TensorAssert.Close(probe.lora_A.grad!, pqb.t().mm(w.grad!) * probe.Scaling, 1e-5, 1e-4, "float32 dL/dA = s Q_Bᵀ G");
    }
}
