using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Pipelines;

public sealed class GuidanceTests
{
    [Fact]
    public void RescaleZeroIsPlainGuidanceAndOneMatchesTheConditionalSpread()
    {
        var generator = new Generator(5);
        var uncond = randn([3, 4, 8, 8], generator: generator);
        var cond = uncond + 0.3f * randn([3, 4, 8, 8], generator: generator);
        var plain = StableDiffusionPipeline.Guide(uncond, cond, 7.5, 0);
        Assert.True(plain.allclose(uncond + 7.5f * (cond - uncond), 1e-6, 1e-6));

        var full = StableDiffusionPipeline.Guide(uncond, cond, 7.5, 1);
        for (int b = 0; b < 3; b++)
        {
            Assert.Equal(cond[b].std().item<float>(), full[b].std().item<float>(), 4);
            Assert.True(plain[b].std().item<float>() > 1.5 * cond[b].std().item<float>(), "guidance at 7.5 spreads the prediction");
            // Rescaling scales each image by one factor: the guided direction is kept.
            var ratio = full[b] / plain[b];
            Assert.True(ratio.std().item<float>() < 1e-4);
        }
        var half = StableDiffusionPipeline.Guide(uncond, cond, 7.5, 0.7);
        Assert.True(half.allclose(0.7f * full + 0.3f * plain, 1e-5, 1e-5));
    }

    [Theory]
    [InlineData("0,600", 0, 600)]
    [InlineData("250.5,999", 250.5, 999)]
    public void IntervalParses(string text, double low, double high)
    {
        var interval = GuidanceInterval.Parse(text);
        Assert.Equal(new GuidanceInterval(low, high), interval);
        Assert.True(interval.Contains(low) && interval.Contains(high) && !interval.Contains(high + 1) && !interval.Contains(low - 1));
        Assert.Equal(interval, GuidanceInterval.Parse(interval.ToString()));
    }

    [Fact]
    public void AlwaysRoundTrips()
    {
        Assert.Equal("always", GuidanceInterval.Always.ToString());
        Assert.True(GuidanceInterval.Parse("always").IsAlways);
        Assert.True(GuidanceInterval.Parse(" Always ").Contains(999.5) && GuidanceInterval.Always.Contains(-1));
    }

    [Theory]
    [InlineData("600")]
    [InlineData("sometimes")]
    [InlineData("a,b")]
    [InlineData("700,100")]
    [InlineData("0,600,900")]
    public void BadIntervalIsAClearError(string text) =>
        Assert.Contains("guidance interval", Assert.Throws<FormatException>(() => GuidanceInterval.Parse(text)).Message);

    /// <summary>Guidance outside its interval is the conditional prediction alone: an empty interval gives the cfg-1 image, a full one the plain run's.</summary>
    [Fact]
    public void IntervalSwitchesGuidanceByTimestep()
    {
        using var model = EmbeddedDefaultModel.Create();
        PipelineCall Call(double cfg, GuidanceInterval interval) => new()
        {
            Prompts = ["a large red star in the center, plain white background"], Seeds = [11], Width = 64, Height = 64, Steps = 6,
            GuidanceScale = cfg, Interval = interval,
        };
        Tensor Run(PipelineCall call)
        {
            using var scheduler = model.CreateScheduler("default");
            using var result = new StableDiffusionPipeline(model, scheduler).Run(call);
            return result.Latents.clone();
        }
        var unguided = Run(Call(1, GuidanceInterval.Always));
        var guided = Run(Call(7.5, GuidanceInterval.Always));
        Assert.True((guided - unguided).abs().max().item<float>() > 1e-2, "guidance changes the trained model's sample");
        Assert.True(Run(Call(7.5, new GuidanceInterval(2000, 3000))).allclose(unguided, 1e-4, 1e-4));
        Assert.True(Run(Call(7.5, new GuidanceInterval(0, 999))).allclose(guided, 1e-5, 1e-5));
        var partial = Run(Call(7.5, new GuidanceInterval(0, 500)));
        Assert.False(partial.allclose(guided, 1e-3, 1e-3));
        Assert.False(partial.allclose(unguided, 1e-3, 1e-3));
    }
}
