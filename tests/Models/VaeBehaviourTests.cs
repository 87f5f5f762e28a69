using DiffusionPeft.Diffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

public sealed class VaeBehaviourTests
{
    [Fact]
    public void PosteriorClampsLogVarAndSamplesReproducibly()
    {
        using var scope = NewDisposeScope();
        var mean = randn(1, 4, 3, 3);
        var logvar = randn(1, 4, 3, 3);
        logvar[0, 0, 0, 0] = tensor(50f);
        logvar[0, 1, 0, 0] = tensor(-50f);
        var posterior = new DiagonalGaussianDistribution(cat([mean, logvar], 1));
        Assert.Equal(20f, posterior.LogVar[0, 0, 0, 0].item<float>());
        Assert.Equal(-30f, posterior.LogVar[0, 1, 0, 0].item<float>());
        TensorAssert.Close(posterior.Std, (0.5 * posterior.LogVar).exp(), 0, 0, "std");
        TensorAssert.Close(posterior.Mode(), mean, 0, 0, "mode");

        var a = posterior.Sample(new Generator(42));
        var b = posterior.Sample(new Generator(42));
        TensorAssert.Close(a, b, 0, 0, "same generator seed");
        var eps = randn(mean.shape, generator: new Generator(42));
        TensorAssert.Close(a, mean + posterior.Std * eps, 1e-6, 1e-6, "mean + std * eps");
    }

    [Fact]
    public void EncodeDecodeShapesFollowTheNumberOfLevels()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(3);
        var vae = new AutoencoderKL(new AutoencoderKLConfig
        {
            BlockOutChannels = [8, 16, 16],
            DownBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
            UpBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
            LayersPerBlock = 1,
            NormNumGroups = 4,
        });
        vae.eval();
        var posterior = vae.Encode(randn(2, 3, 24, 40));
        Assert.Equal(new long[] { 2, 4, 6, 10 }, posterior.Mean.shape);
        Assert.Equal(new long[] { 2, 3, 24, 40 }, vae.Decode(posterior.Mode()).shape);
    }
}
