using DiffusionPeft.Experiments.Claims;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Experiments;

public sealed class EffectiveRankTests
{
    private static Tensor WithSingularValues(params double[] s)
    {
        int n = s.Length;
        var u = LowRankTargets.Orthonormal(n + 2, n, new Generator(1), ScalarType.Float64);
        var v = LowRankTargets.Orthonormal(n + 1, n, new Generator(2), ScalarType.Float64);
        return (u * tensor(s, ScalarType.Float64)).mm(v.t());
    }

    [Fact]
    public void EqualSingularValuesGiveTheirCountAndZerosCountForNothing()
    {
        Assert.Equal(3, EffectiveRank.Of(WithSingularValues(2, 2, 2)), 9);
        Assert.Equal(2, EffectiveRank.Of(WithSingularValues(5, 5, 0)), 9);
        Assert.Equal(1, EffectiveRank.Of(WithSingularValues(1, 0, 0)), 9);
    }

    [Fact]
    public void UnequalSingularValuesGiveTheExponentialOfTheEntropy()
    {
        // p = (3/4, 1/4): exp(-(3/4 ln 3/4 + 1/4 ln 1/4))
        double expected = Math.Exp(-(0.75 * Math.Log(0.75) + 0.25 * Math.Log(0.25)));
        Assert.Equal(expected, EffectiveRank.Of(WithSingularValues(3, 1)), 9);
    }

    [Fact]
    public void ZeroMatrixIsNaNAndRotationsDoNotChangeIt()
    {
        Assert.True(double.IsNaN(EffectiveRank.Of(zeros(4, 3))));
        var m = WithSingularValues(4, 2, 1);
        var q = LowRankTargets.Orthonormal(4, 4, new Generator(7), ScalarType.Float64);   // m is 5 x 4
        Assert.Equal(EffectiveRank.Of(m), EffectiveRank.Of(m.mm(q)), 9);   // G·Q_A for any basis of one column space
    }
}
