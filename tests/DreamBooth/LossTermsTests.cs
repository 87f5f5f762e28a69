using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

public sealed class LrScheduleTests
{
    private static double F(LrScheduleKind kind, int warmup, int total, long step, int cycles = 1, double power = 1, double lr = 1e-3, double end = 1e-7) =>
        new LrSchedule(kind, warmup, total, cycles, power, lr, end).Factor(step);

    [Fact]
    public void ConstantAndWarmup()
    {
        Assert.Equal(1.0, F(LrScheduleKind.Constant, 10, 100, 0));
        Assert.Equal(0.25, F(LrScheduleKind.ConstantWithWarmup, 4, 100, 1));
        Assert.Equal(1.0, F(LrScheduleKind.ConstantWithWarmup, 4, 100, 4));
        Assert.Equal(1.0, F(LrScheduleKind.ConstantWithWarmup, 0, 100, 0)); // max(1, warmup)
    }

    [Fact]
    public void Linear()
    {
        Assert.Equal(0.0, F(LrScheduleKind.Linear, 10, 100, 0));
        Assert.Equal(0.5, F(LrScheduleKind.Linear, 10, 100, 5));
        Assert.Equal(1.0, F(LrScheduleKind.Linear, 10, 100, 10));
        Assert.Equal(0.5, F(LrScheduleKind.Linear, 10, 100, 55), 15);   // (100 - 55) / 90
        Assert.Equal(0.0, F(LrScheduleKind.Linear, 10, 100, 100));
        Assert.Equal(0.0, F(LrScheduleKind.Linear, 10, 100, 130));
    }

    [Fact]
    public void CosineIsAHalfCosineAndRestartsTakeCycles()
    {
        Assert.Equal(0.3, F(LrScheduleKind.Cosine, 10, 110, 3), 15);
        Assert.Equal(0.5, F(LrScheduleKind.Cosine, 10, 110, 60), 15);             // progress 0.5
        Assert.Equal(0.853553390593274, F(LrScheduleKind.Cosine, 10, 110, 35), 12); // 0.5 (1 + cos(π/4))
        Assert.Equal(0.0, F(LrScheduleKind.Cosine, 10, 110, 110), 15);
        Assert.Equal(0.5, F(LrScheduleKind.CosineWithRestarts, 0, 100, 25, cycles: 2), 15);
        Assert.Equal(1.0, F(LrScheduleKind.CosineWithRestarts, 0, 100, 50, cycles: 2), 15); // the restart
        Assert.Equal(0.5, F(LrScheduleKind.CosineWithRestarts, 0, 100, 75, cycles: 2), 15);
        Assert.Equal(0.0, F(LrScheduleKind.CosineWithRestarts, 0, 100, 100, cycles: 2));
    }

    [Fact]
    public void PolynomialDecaysToLrEnd()
    {
        // lr 1e-3 → 1e-5, power 2, no warm-up: at half way ((1e-3 - 1e-5) · 0.25 + 1e-5) / 1e-3 = 0.2575.
        Assert.Equal(0.2575, F(LrScheduleKind.Polynomial, 0, 100, 50, power: 2, end: 1e-5), 12);
        Assert.Equal(0.01, F(LrScheduleKind.Polynomial, 0, 100, 100, power: 2, end: 1e-5), 12);
        Assert.Equal(0.01, F(LrScheduleKind.Polynomial, 0, 100, 150, power: 2, end: 1e-5), 12);
        Assert.Equal(0.5, F(LrScheduleKind.Polynomial, 20, 100, 10, power: 2, end: 1e-5), 15);
        Assert.Throws<ArgumentException>(() => F(LrScheduleKind.Polynomial, 0, 100, 1, lr: 1e-3, end: 1e-3));
    }

    [Fact]
    public void FromConfigUsesItsOptions()
    {
        var s = LrSchedule.From(new TrainConfig { Lr = 2e-4, Steps = 300, LrScheduler = LrScheduleKind.Linear, LrWarmupSteps = 30 });
        Assert.Equal(new LrSchedule(LrScheduleKind.Linear, 30, 300, 1, 1.0, 2e-4, 1e-7), s);
    }
}

public sealed class DiffusionLossTermsTests
{
    [Fact]
    public void SnrAndMinSnrWeights()
    {
        using var ac = tensor(new float[] { 0.9f, 0.5f, 0.1f });
        using var t = tensor(new long[] { 0, 1, 2, 0 });
        using var snr = DiffusionLossTerms.Snr(ac, t);
        TensorAssert.Close(snr, tensor(new[] { 9.0, 1.0, 1 / 9.0, 9.0 }), 1e-5, 1e-6, "snr");
        using var eps = DiffusionLossTerms.MinSnrWeights(snr, 5, PredictionType.Epsilon);
        TensorAssert.Close(eps, tensor(new[] { 5 / 9.0, 1, 1, 5 / 9.0 }), 1e-6, 1e-6, "epsilon weights");
        using var v = DiffusionLossTerms.MinSnrWeights(snr, 5, PredictionType.VPrediction);
        TensorAssert.Close(v, tensor(new[] { 0.5, 0.5, 0.1, 0.5 }), 1e-6, 1e-6, "v weights");
        using var x0 = DiffusionLossTerms.MinSnrWeights(snr, 5, PredictionType.Sample);
        TensorAssert.Close(x0, tensor(new[] { 5, 1, 1 / 9.0, 5 }), 1e-6, 1e-6, "sample weights");
    }

    [Fact]
    public void SnrOfTheStableDiffusionScheduleAtTheEnds()
    {
        // scaled_linear betas 0.00085..0.012 over 1000 steps, ᾱ = cumprod(1 − β), computed in float64.
        using var betas = linspace(Math.Sqrt(0.00085), Math.Sqrt(0.012), 1000, dtype: ScalarType.Float64).pow(2);
        using var ac = (1 - betas).cumprod(0);
        using var snr = DiffusionLossTerms.Snr(ac, tensor(new long[] { 0, 999 }));
        double a0 = 1 - 0.00085, aLast = ac[999].item<double>();
        Assert.Equal(a0 / (1 - a0), snr[0].item<float>(), 0.5);          // ≈ 1175.5
        Assert.Equal(aLast / (1 - aLast), snr[1].item<float>(), 1e-6);  // ≈ 0.0047
        Assert.InRange(aLast, 0.0046, 0.0047);
    }

    [Fact]
    public void WeightedMseAveragesPerSampleThenWeights()
    {
        using var pred = tensor(new float[] { 1, 2, 3, 4 }, [2, 1, 1, 2]);
        using var target = zeros(2, 1, 1, 2);
        Assert.Equal(7.5, DiffusionLossTerms.WeightedMse(pred, target).item<float>(), 6);
        using var w = tensor(new float[] { 1, 0.5f });
        Assert.Equal(4.375, DiffusionLossTerms.WeightedMse(pred, target, w).item<float>(), 6); // (2.5 + 12.5 · 0.5) / 2
        using var full = nn.functional.mse_loss(pred, target);
        Assert.Equal(full.item<float>(), DiffusionLossTerms.WeightedMse(pred, target).item<float>());
    }

    [Fact]
    public void NoiseOffsetAddsOneValuePerSampleAndChannel()
    {
        using var noise = zeros(2, 3, 4, 4);
        using var g = new Generator(11);
        using var offset = DiffusionLossTerms.OffsetNoise(noise, 0.1, g);
        using var g2 = new Generator(11);
        using var expected = randn([2, 3, 1, 1], generator: g2) * 0.1;
        Bits.AssertIdentical(offset, expected.expand(2, 3, 4, 4), "offset noise");
        using var none = DiffusionLossTerms.OffsetNoise(noise, 0, g);
        Bits.AssertIdentical(none, noise, "zero offset");
    }

    [Fact]
    public void TrainingRngStateRestoresTheStream()
    {
        using var rng = new TrainingRng(5);
        using var _ = rng.Randn([3]);
        var state = rng.GetState();
        using var a = rng.Randn([4, 5]);
        using var ta = rng.RandInt(0, 1000, [6]);
        using var other = new TrainingRng(99);
        other.SetState(state);
        using var b = other.Randn([4, 5]);
        using var tb = other.RandInt(0, 1000, [6]);
        Bits.AssertIdentical(b, a, "randn after restore");
        Bits.AssertIdentical(tb, ta, "randint after restore");
    }
}
