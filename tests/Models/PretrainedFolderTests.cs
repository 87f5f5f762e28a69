using System.Text.RegularExpressions;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

/// <summary>UNet and VAE loaded with FromPretrained from a diffusers pipeline folder reproduce the pipeline's recorded
/// UNet calls (classifier-free guidance batch) and its VAE decode of the final latents.</summary>
[Trait("Category", "Golden")]
public sealed class PretrainedFolderTests(ITestOutputHelper output)
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

    /// <summary>Each weight variant the case's runs load: FromPretrained holds the variant file's values (float32), the main load the main file's.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void VariantLoadsTheVariantFilesValues(string caseName)
    {
        var golden = GoldenFolderCase.Load(caseName);
        if (golden.Variants.Count == 0) output.WriteLine($"skipped: no run of {caseName} loads a weight variant");
        using var scope = NewDisposeScope();
        foreach (var variant in golden.Variants)
            foreach (var component in new[] { "unet", "vae", "text_encoder" })
            {
                var file = golden.WeightsFileFor(component, variant);
                if (file == golden.MainWeightsFile(component)) continue;
                var dir = golden.PathOf(component);
                AssertHolds(Load(component, dir, variant), golden.PathOf(file), $"{component} {variant}");
                AssertHolds(Load(component, dir, null), golden.PathOf(golden.MainWeightsFile(component)), $"{component} main");
            }
    }

    private static nn.Module Load(string component, string dir, string? variant) => component switch
    {
        "unet" => UNet2DConditionModel.FromPretrained(dir, variant: variant),
        "vae" => AutoencoderKL.FromPretrained(dir, variant: variant),
        _ => CLIPTextModel.FromPretrained(dir, variant: variant),
    };

    private static void AssertHolds(nn.Module model, string weightsFile, string what)
    {
        using var file = SafetensorsFile.Open(weightsFile);
        var state = model.state_dict();
        Assert.Equal(file.Names.Order(StringComparer.Ordinal), state.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, value) in state)
            TensorAssert.Close(value, file.Read(key).to_type(ScalarType.Float32), 0, 0, $"{what}: {key} ({Path.GetFileName(weightsFile)})");
    }
}
