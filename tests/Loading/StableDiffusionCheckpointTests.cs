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
        var source = GoldenFolderCase.Load(GoldenSingleFileCase.SourceCase(caseName));
        // The file holds the weights of the run it reproduces: the folder read with that run's variant.
        var variant = GoldenFolderCase.VariantOf(source.Run(GoldenSingleFileCase.ReproducedRun(caseName)));
        var folderPath = source.ModelFolder;
        var folder = DiffusersModelFolder.Open(folderPath);
        using var fromFolder = StableDiffusionCheckpoint.Open(folderPath, variant: variant);
        using var fromFile = StableDiffusionCheckpoint.Open(GoldenData.FileOf(caseName, "checkpoint"), configsFrom: folder);
        using var bare = StableDiffusionCheckpoint.Open(GoldenData.FileOf(caseName, "checkpoint"));

        Assert.Equal(CheckpointFormat.DiffusersFolder, fromFolder.Layout.Format);
        var unetFile = Path.GetFullPath(source.PathOf(source.WeightsFileFor("unet", variant)));
        Assert.Equal(unetFile, fromFolder.UNet.Description);
        Assert.Equal(unetFile, fromFolder.IdentityFile);
        Assert.Equal(Path.GetFullPath(GoldenData.FileOf(caseName, "checkpoint")), bare.IdentityFile);
        Assert.Equal(CheckpointFormat.SingleFile, fromFile.Layout.Format);
        Assert.Equal(Path.Combine(folderPath, "tokenizer"), fromFolder.TokenizerDir);
        Assert.Equal(fromFolder.TokenizerDir, fromFile.TokenizerDir);
        Assert.Null(bare.TokenizerDir);

        // configsFrom supplies what the weights cannot tell; without it the documented defaults apply (see SingleFileCheckpointTests).
        Assert.Equal(folder.Config("text_encoder").Int("num_attention_heads"), fromFile.TextEncoderConfig.Int("num_attention_heads"));
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(folder.Config("unet").Root["attention_head_dim"], fromFile.UNetConfig.Root["attention_head_dim"]));
        Assert.Equal(fromFolder.UNetConfig.Ints("block_out_channels"), bare.UNetConfig.Ints("block_out_channels"));

        // The scheduler: the folder's with configsFrom, else the documented SD training schedule.
        var defaultScheduler = ConfigJson.Parse(StableDiffusionCheckpoint.DefaultScheduler);
        foreach (var (expected, actual, what) in new[] { (folder.Config("scheduler"), fromFile.SchedulerConfig, "configsFrom"), (defaultScheduler, bare.SchedulerConfig, "default") })
            foreach (var (key, value) in expected.Root.Where(kv => !kv.Key.StartsWith('_') || kv.Key == "_class_name"))
                Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(value, actual.Root[key]), $"{what} scheduler {key}: expected {value?.ToJsonString()}, got {actual.Root[key]?.ToJsonString()}");

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
