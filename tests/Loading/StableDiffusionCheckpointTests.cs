using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Tests.Golden;
using TorchSharp;

namespace DiffusionPeft.Tests.Loading;

[Trait("Category", "Golden")]
public sealed class StableDiffusionCheckpointTests
{
    public static TheoryData<string> SingleFileCases => GoldenData.CasesOfKind("single_file");

    [Theory, MemberData(nameof(SingleFileCases))]
    public void FolderAndSingleFileGiveTheSameComponents(string caseName)
    {
        var folderPath = DiffusersModelFolderTests.FolderOf((string)GoldenData.Case(caseName)["source_case"]!);
        var folder = DiffusersModelFolder.Open(folderPath);
        using var fromFolder = StableDiffusionCheckpoint.Open(folderPath, variant: "fp16");
        using var fromFile = StableDiffusionCheckpoint.Open(GoldenData.FileOf(caseName, "checkpoint"), configsFrom: folder);
        using var bare = StableDiffusionCheckpoint.Open(GoldenData.FileOf(caseName, "checkpoint"));

        Assert.Equal(CheckpointFormat.DiffusersFolder, fromFolder.Layout.Format);
        Assert.EndsWith("diffusion_pytorch_model.fp16.safetensors", fromFolder.UNet.Description);
        Assert.Equal(Path.Combine(Path.GetFullPath(folderPath), "unet", "diffusion_pytorch_model.fp16.safetensors"), fromFolder.IdentityFile);
        Assert.Equal(Path.GetFullPath(GoldenData.FileOf(caseName, "checkpoint")), bare.IdentityFile);
        Assert.Equal(CheckpointFormat.SingleFile, fromFile.Layout.Format);
        Assert.Equal(Path.Combine(folderPath, "tokenizer"), fromFolder.TokenizerDir);
        Assert.Equal(fromFolder.TokenizerDir, fromFile.TokenizerDir);
        Assert.Null(bare.TokenizerDir);
        Assert.Equal(4, fromFile.TextEncoderConfig.Int("num_attention_heads"));
        Assert.Equal(fromFolder.UNetConfig.Ints("block_out_channels"), bare.UNetConfig.Ints("block_out_channels"));
        foreach (var key in new[] { "beta_start", "beta_end", "num_train_timesteps", "steps_offset" })
            Assert.Equal(fromFolder.SchedulerConfig.Double(key), bare.SchedulerConfig.Double(key));
        Assert.Equal(fromFolder.SchedulerConfig.String("_class_name", ""), bare.SchedulerConfig.String("_class_name", ""));

        var pairs = new[] { (fromFolder.UNet, fromFile.UNet), (fromFolder.Vae, fromFile.Vae), (fromFolder.TextEncoder, fromFile.TextEncoder) };
        foreach (var (a, b) in pairs)
        {
            Assert.Equal(a.Keys.Order(StringComparer.Ordinal), b.Keys.Order(StringComparer.Ordinal));
            var key = a.Keys.Order(StringComparer.Ordinal).Last();
            using var scope = torch.NewDisposeScope();
            Assert.True(a.Read(key, torch.ScalarType.Float32).equal(b.Read(key, torch.ScalarType.Float32)).all().item<bool>(), key);
        }
    }
}
