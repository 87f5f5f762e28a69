using DiffusionPeft.Experiments.Claims;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Experiments;

public sealed class FactorRebalancingTests
{
    [Theory]
    [InlineData(1.0)]
    [InlineData(10.0)]
    [InlineData(1000.0)]
    public void RebalancingKeepsTheProductAndGivesBothFactorsTheConditionOfM(double kappa)
    {
        var g = new Generator(3);
        var u = LowRankTargets.Orthonormal(12, 4, g, ScalarType.Float64);
        var v = LowRankTargets.Orthonormal(9, 4, g, ScalarType.Float64);
        var (b0, a0) = FactorRebalancing.Balanced(u, v, 0.5);
        var m = FactorRebalancing.ConditionedMatrix(4, kappa, new Generator(4));
        var (b, a) = FactorRebalancing.Rebalance(b0, a0, m);

        var p0 = b0.mm(a0);
        Assert.True((b.mm(a) - p0).abs().max().item<double>() < 1e-12 * kappa, "the product changed");
        Assert.Equal(0.5, LowRankTargets.SingularValuesOf(p0)[0], 12);
        Assert.Equal(kappa, LowRankTargets.RankAndCondition(m, 1e-12).Kappa, 6);
        Assert.Equal(kappa, LowRankTargets.RankAndCondition(b, 1e-12).Kappa, 6);
        Assert.Equal(kappa, LowRankTargets.RankAndCondition(a, 1e-12).Kappa, 6);
        var s = LowRankTargets.SingularValuesOf(m);
        Assert.Equal(1.0, Math.Exp(s.Average(Math.Log)), 9);   // geometric mean 1: the factors keep their overall scale
    }

    [Fact]
    public void Float32FactorsKeepTheProductToFloat32Precision()
    {
        var g = new Generator(5);
        var (b0, a0) = FactorRebalancing.Balanced(LowRankTargets.Orthonormal(64, 4, g), LowRankTargets.Orthonormal(64, 4, g), 0.5);
        var (b, a) = FactorRebalancing.Rebalance(b0, a0, FactorRebalancing.ConditionedMatrix(4, 1000, new Generator(6)));
        Assert.Equal(ScalarType.Float32, b.dtype);
        Assert.True((b.mm(a) - b0.mm(a0)).abs().max().item<float>() < 1e-4f);
    }
}
