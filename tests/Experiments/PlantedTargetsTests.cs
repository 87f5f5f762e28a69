using DiffusionPeft.Adapters;
using DiffusionPeft.Experiments.Claims;
using DiffusionPeft.Tests.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Experiments;

public sealed class PlantedTargetsTests
{
    [Theory]
    [InlineData(TargetKind.General, 1.0)]
    [InlineData(TargetKind.General, 100.0)]
    [InlineData(TargetKind.Psd, 10.0)]
    public void LowRankUpdatesHaveTheIntendedRankConditionAndScale(TargetKind kind, double kappa)
    {
        var delta = LowRankTargets.Update(20, 20, 4, kappa, 0.7, kind, new Generator(9), ScalarType.Float64);
        var (rank, cond) = LowRankTargets.RankAndCondition(delta, 1e-9);
        Assert.Equal(4, rank);
        Assert.Equal(kappa, cond, 6);
        Assert.Equal(0.7, LowRankTargets.SingularValuesOf(delta)[0], 9);
        if (kind == TargetKind.Psd)
        {
            Assert.True((delta - delta.t()).abs().max().item<double>() < 1e-12);
            Assert.True(linalg.eigvalsh(delta).min().item<double>() > -1e-12);
        }
    }

    [Fact]
    public void SingLoraShapedTargetsAreWhatSingLoraExpresses()
    {
        var delta = LowRankTargets.Update(6, 9, 3, 10, 1.0, TargetKind.SingLoraShaped, new Generator(2), ScalarType.Float64);   // 9 → 6
        Assert.Equal(new long[] { 6, 9 }, delta.shape);
        Assert.Equal(3, LowRankTargets.RankAndCondition(delta, 1e-9).Rank);
        // A_out = A[:6], A_in = A[:9]: the left 6 x 6 block is A_out A_outᵀ, symmetric PSD.
        var block = delta.narrow(1, 0, 6);
        Assert.True((block - block.t()).abs().max().item<double>() < 1e-12);
        Assert.Equal(0, LowRankTargets.PsdFloor(LowRankTargets.Update(8, 8, 3, 10, 1, TargetKind.SingLoraShaped, new Generator(3), ScalarType.Float64), 3), 12);
    }

    [Fact]
    public void PlantingAddsARankKUpdateWithConditionKappaToEveryTargetedLayerOnly()
    {
        var context = randn([2, 3, 6], ScalarType.Float64);
        var model = new FakeTransformer(8, 6, context);
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var planted = PlantedUpdates.Plant(model, InjectionTargets.UNetAttention, rank: 2, kappa: 10, relativeScale: 0.5, new Generator(11));

        Assert.Equal(8, planted.Count);   // attn1/attn2 × to_q, to_k, to_v, to_out.0
        foreach (var (path, delta) in planted)
        {
            var w = ((Linear)AdapterInjector.Find(model, path)!).weight!;
            var change = w.detach() - before[path + ".weight"];
            Assert.True((change - delta.to_type(ScalarType.Float64)).abs().max().item<double>() < 1e-6, path);
            var (rank, cond) = LowRankTargets.RankAndCondition(change, 1e-6);
            Assert.Equal(2, rank);
            Assert.Equal(10, cond, 4);
            Assert.Equal(0.5 * LowRankTargets.SingularValuesOf(before[path + ".weight"])[0], LowRankTargets.SingularValuesOf(change)[0], 6);
        }
        Assert.Contains("transformer_blocks.0.attn2.to_k", planted.Keys);
        Assert.True(before["transformer_blocks.0.proj_in.weight"].allclose(model.named_parameters().First(p => p.name == "transformer_blocks.0.proj_in.weight").parameter.detach(), 0, 0));
    }

    private sealed class TwoLayers : nn.Module<Tensor, Tensor>
    {
        public readonly Linear first = nn.Linear(6, 5), second = nn.Linear(5, 4);
        public TwoLayers() : base(nameof(TwoLayers)) => RegisterComponents();
        public override Tensor forward(Tensor x) => second.call(first.call(x).relu());
    }

    [Fact]
    public void SecondMomentsAreTheMeanOuterProductOfEachLayersInputs()
    {
        manual_seed(4);
        var net = new TwoLayers();
        var a = randn(3, 2, 6, dtype: ScalarType.Float32);
        var b = randn(7, 6, dtype: ScalarType.Float32);
        var moments = LayerInputs.SecondMoments(net, ["first", "second"], () => { using var _ = no_grad(); net.call(a); net.call(b); });
        var x = cat([a.reshape(-1, 6), b]).to_type(ScalarType.Float64);
        Assert.True((moments["first"] - x.t().mm(x) / 13).abs().max().item<double>() < 1e-6);
        using (no_grad())
        {
            var h = cat([net.first.call(a).relu().reshape(-1, 5), net.first.call(b).relu()]).to_type(ScalarType.Float64);
            Assert.True((moments["second"] - h.t().mm(h) / 13).abs().max().item<double>() < 1e-6);
        }
        // The hooks are gone afterwards: another call does not change what was collected.
        var before = moments["first"].clone();
        using (no_grad()) net.call(b);
        Assert.Equal(0, (moments["first"] - before).abs().max().item<double>());
    }

    [Fact]
    public void AnInputSpanPlantActsOnlyAlongTheLayersLeadingInputDirections()
    {
        // Inputs confined to a 2-dimensional subspace of R^6: a rank-2 plant along it loses nothing on those inputs, and
        // any part of ΔW off that subspace would be invisible to them.
        var basis = LowRankTargets.Orthonormal(6, 2, new Generator(5), ScalarType.Float64);
        var x = randn(40, 2, dtype: ScalarType.Float64, generator: new Generator(6)).mm(basis.t());
        var moment = x.t().mm(x) / 40;
        var v = LayerInputs.LeadingDirections(moment, 2);
        Assert.True((v.mm(v.t()) - basis.mm(basis.t())).abs().max().item<double>() < 1e-9);   // the same subspace
        var delta = LowRankTargets.UpdateAlong(v, 5, 10, 0.8, new Generator(7), ScalarType.Float64);
        Assert.Equal(new long[] { 5, 6 }, delta.shape);
        var (rank, cond) = LowRankTargets.RankAndCondition(delta, 1e-9);
        Assert.Equal(2, rank);
        Assert.Equal(10, cond, 6);
        Assert.Equal(0.8, LowRankTargets.SingularValuesOf(delta)[0], 9);
        var offSpan = eye(6, dtype: ScalarType.Float64) - v.mm(v.t());
        Assert.True(delta.mm(offSpan).abs().max().item<double>() < 1e-9);
    }
}
