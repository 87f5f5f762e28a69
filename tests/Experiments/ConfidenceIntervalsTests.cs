using DiffusionPeft.Experiments.Claims;

namespace DiffusionPeft.Tests.Experiments;

public sealed class ConfidenceIntervalsTests
{
    [Fact]
    public void MeanTIntervalUsesStudentsQuantile()
    {
        var i = ConfidenceIntervals.MeanT([1, 2, 3, 4, 5]);
        double half = 2.776 * Math.Sqrt(2.5) / Math.Sqrt(5);   // sd = √2.5, t(0.975, 4) = 2.776
        Assert.Equal(3, i.Estimate, 12);
        Assert.Equal(3 - half, i.Lower, 9);
        Assert.Equal(3 + half, i.Upper, 9);
        Assert.Equal(5, i.N);
        Assert.True(double.IsNaN(ConfidenceIntervals.MeanT([4]).Lower));
    }

    [Fact]
    public void WilsonIntervalMatchesTheScoreFormula()
    {
        var i = ConfidenceIntervals.Wilson(10, 100);
        Assert.Equal(0.10, i.Estimate, 12);
        Assert.Equal(0.05523, i.Lower, 4);   // Wilson 1927; 10 of 100 at 95%
        Assert.Equal(0.17437, i.Upper, 4);
        var none = ConfidenceIntervals.Wilson(0, 20);
        Assert.Equal(0, none.Lower, 12);   // unlike the normal approximation, never below 0 and never empty
        Assert.Equal(0.16113, none.Upper, 4);
        Assert.Equal(0, ConfidenceIntervals.Wilson(0, 0).N);
    }

    [Fact]
    public void GeometricMeanIntervalIsTheTIntervalOnLog10()
    {
        var i = ConfidenceIntervals.GeoMeanT([10, 100, 1000]);
        double half = 4.303 * 1.0 / Math.Sqrt(3);   // log10 values 1, 2, 3: sd 1, t(0.975, 2) = 4.303
        Assert.Equal(100, i.Estimate, 9);
        Assert.Equal(Math.Pow(10, 2 - half), i.Lower, 9);
        Assert.Equal(Math.Pow(10, 2 + half), i.Upper, 6);
        Assert.Equal(double.PositiveInfinity, ConfidenceIntervals.GeoMeanT([1, double.PositiveInfinity]).Estimate);   // a diverged seed
        Assert.True(double.IsNaN(ConfidenceIntervals.GeoMeanT([1, 0]).Estimate));
    }

    [Fact]
    public void BootstrapMedianIsDeterministicDegenerateForConstantsAndKeepsCensoredValues()
    {
        var constant = ConfidenceIntervals.MedianBootstrap([7, 7, 7, 7, 7]);
        Assert.Equal((7.0, 7.0, 7.0), (constant.Estimate, constant.Lower, constant.Upper));

        double inf = double.PositiveInfinity;
        var censored = ConfidenceIntervals.MedianBootstrap([10, 20, 30, inf, inf]);
        Assert.Equal(30, censored.Estimate);
        Assert.Equal(inf, censored.Upper);   // more than 2.5% of resampled medians are never-reached
        Assert.True(censored.Lower >= 10 && censored.Lower <= 30);
        Assert.Equal(censored, ConfidenceIntervals.MedianBootstrap([10, 20, 30, inf, inf]));

        var spread = ConfidenceIntervals.MedianBootstrap([1, 2, 3, 4, 100]);
        Assert.True(spread.Lower <= 3 && spread.Upper >= 3 && spread.Upper <= 100);
    }

    [Fact]
    public void MedianAndPercentileFollowTheUsualDefinitions()
    {
        Assert.Equal(2.5, ConfidenceIntervals.Median([4, 1, 3, 2]));
        Assert.Equal(double.PositiveInfinity, ConfidenceIntervals.Median([1, double.PositiveInfinity, double.PositiveInfinity]));
        Assert.Equal(1.75, ConfidenceIntervals.Percentile([1, 2, 3, 4], 0.25), 12);   // numpy.percentile([1,2,3,4], 25)
        Assert.Equal(-1.5, LinearFit.Ols([1, 2, 3, 4], [8.5, 7, 5.5, 4]).Slope, 12);
    }
}
