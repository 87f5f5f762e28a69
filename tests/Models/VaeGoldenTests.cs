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
        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(GoldenData.FileOf(caseName, "config")));
        vae.LoadWeights(GoldenData.FileOf(caseName, "weights"));
        vae.eval();
        using var io = new GoldenIo(caseName);

        var image = io.Read("input.image");
        var encoderOut = vae.encoder.call(image);
        io.CheckIfPresent(encoderOut, "debug.encoder_out");
        var moments = vae.quant_conv.call(encoderOut);
        io.CheckIfPresent(moments, "output.moments");

        var posterior = vae.Encode(image);
        io.Check(posterior.Mean, "output.posterior_mean");
        io.Check(posterior.LogVar, "output.posterior_logvar");
        io.CheckIfPresent(posterior.Std, "output.posterior_std");

        var latent = io.Read("input.latent");
        io.CheckIfPresent(vae.post_quant_conv.call(latent), "debug.post_quant_conv");
        io.Check(vae.Decode(latent), "output.decoded");
        io.CheckIfPresent(vae.Forward(image, samplePosterior: false), "output.reconstruction");
    }
}
