using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

[Trait("Category", "Golden")]
public sealed class VaeGoldenTests
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("vae");

    [Theory, MemberData(nameof(Cases))]
    public void MatchesDiffusers(string caseName)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var tol = GoldenData.ToleranceOf(caseName);
        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(GoldenData.FileOf(caseName, "config")));
        vae.LoadWeights(GoldenData.FileOf(caseName, "weights"));
        vae.eval();
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));

        var image = io.Read("input.image");
        var encoderOut = vae.encoder.call(image);
        CheckIfPresent(encoderOut, "debug.encoder_out");
        var moments = vae.quant_conv.call(encoderOut);
        CheckIfPresent(moments, "output.moments");

        var posterior = vae.Encode(image);
        Check(posterior.Mean, "output.posterior_mean");
        Check(posterior.LogVar, "output.posterior_logvar");
        CheckIfPresent(posterior.Std, "output.posterior_std");

        var latent = io.Read("input.latent");
        CheckIfPresent(vae.post_quant_conv.call(latent), "debug.post_quant_conv");
        Check(vae.Decode(latent), "output.decoded");
        CheckIfPresent(vae.Forward(image, samplePosterior: false), "output.reconstruction");

        void CheckIfPresent(Tensor actual, string name) { if (io.Contains(name)) Check(actual, name); }
        void Check(Tensor actual, string name)
        {
            var (atol, rtol) = tol.For(name);
            TensorAssert.Close(actual, io.Read(name), atol, rtol, $"{caseName} {name}");
        }
    }
}
