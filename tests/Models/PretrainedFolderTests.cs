using System.Text.RegularExpressions;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

/// <summary>UNet and VAE loaded with FromPretrained from a diffusers pipeline folder reproduce the pipeline's recorded
/// UNet calls (classifier-free guidance batch) and its VAE decode of the final latents.</summary>
[Trait("Category", "Golden")]
public sealed class PretrainedFolderTests
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("diffusers_folder");

    [Theory, MemberData(nameof(Cases))]
    public void UNetReproducesThePipelinesUNetCalls(string caseName)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var unet = UNet2DConditionModel.FromPretrained(Path.Combine(GoldenData.FileOf(caseName, "model_folder"), "unet"));
        using var io = new GoldenIo(caseName);
        var context = cat([io.Read("intermediate.negative_prompt_embeds"), io.Read("intermediate.prompt_embeds")], 0);

        int runs = 0;
        foreach (var key in io.Names.Where(k => Regex.IsMatch(k, @"^intermediate\.\w+\.unet_output$")).ToList())
        {
            var run = key.Split('.')[1];
            var expected = io.Read(key);
            var timesteps = io.Read($"intermediate.{run}.timesteps");
            var stepLatents = io.Read($"intermediate.{run}.step_latents");
            for (int i = 0; i < expected.shape[0]; i++)
            {
                // Call i sees the latents after step i-1 (the initial latents for the first call), duplicated for guidance.
                var latents = i == 0 ? io.Read("input.latents") : stepLatents[i - 1];
                var output = unet.Forward(cat([latents, latents], 0), timesteps[i], context);
                io.Check(output, key, $"{key}[{i}]", expected[i]);
            }
            runs++;
        }
        Assert.True(runs > 0, $"{caseName}: no intermediate.<run>.unet_output tensors");
    }

    [Theory, MemberData(nameof(Cases))]
    public void VaeDecodesTheFinalLatentsToThePipelinesImage(string caseName)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var vae = AutoencoderKL.FromPretrained(Path.Combine(GoldenData.FileOf(caseName, "model_folder"), "vae"));
        using var io = new GoldenIo(caseName);

        int runs = 0;
        foreach (var key in io.Names.Where(k => Regex.IsMatch(k, @"^output\.\w+\.image$")).ToList())
        {
            var run = key.Split('.')[1];
            var latents = io.Read($"output.{run}.latents");
            var image = (vae.Decode(latents / vae.Config.ScalingFactor) / 2 + 0.5).clamp(0.0, 1.0).permute(0, 2, 3, 1);
            io.Check(image, key);
            runs++;
        }
        Assert.True(runs > 0, $"{caseName}: no output.<run>.image tensors");
    }

    [Theory, MemberData(nameof(Cases))]
    public void Fp16VariantLoadsTheRoundedWeights(string caseName)
    {
        using var scope = NewDisposeScope();
        var folder = Path.Combine(GoldenData.FileOf(caseName, "model_folder"), "unet");
        if (!File.Exists(Path.Combine(folder, "diffusion_pytorch_model.fp16.safetensors"))) return;
        var full = UNet2DConditionModel.FromPretrained(folder);
        var half = UNet2DConditionModel.FromPretrained(folder, variant: "fp16");
        var a = full.state_dict();
        var b = half.state_dict();
        double maxDiff = a.Keys.Max(k => TensorAssert.MaxAbsDiff(a[k], b[k]));
        Assert.True(maxDiff > 0, "the fp16 variant loaded the same values as the float32 file");
        foreach (var k in a.Keys)
            TensorAssert.Close(b[k], a[k].to_type(ScalarType.Float16).to_type(ScalarType.Float32), 0, 0, $"{k} (fp16 variant = rounded float32)");
    }
}
