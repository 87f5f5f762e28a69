using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Cli;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Tests.Golden;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Cli;

/// <summary>`dpeft adapter inspect | export | merge` and `dpeft generate --adapter` on the golden tiny SD 1.5 model.</summary>
public sealed class AdapterCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-adapter-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private static string Folder => Path.Combine(GoldenData.Dir, "tiny_sd15_diffusers", "model");
    private static string Kohya => GoldenData.FileOf("lora_kohya_tiny", "lora");

    private static (int Code, string Out, string Err) Dpeft(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private static Tensor UNetOutput(StableDiffusionModel model)
    {
        using var _ = no_grad();
        var sample = randn(1, 4, 8, 8, generator: new Generator(3));
        var context = randn(1, 77, model.Unet.Config.CrossAttentionDim[0], generator: new Generator(4));
        return model.Unet.forward(sample, tensor(321L), context);
    }

    [Fact]
    public void InspectDescribesAKohyaFile()
    {
        var r = Dpeft("adapter", "inspect", Kohya);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("format:      kohya", r.Out);
        Assert.Contains("rank:        4", r.Out);
        Assert.Contains("alpha:       2", r.Out);
        Assert.Contains("modules:     140 (text_encoder 12, unet 128)", r.Out);
        Assert.Contains("ss_network_dim: 4", r.Out);
    }

    [Theory]
    [InlineData(AdapterMethod.SingLora)]
    [InlineData(AdapterMethod.Dora)]
    [InlineData(AdapterMethod.SdsLora)]
    public void ExportedFilesReproduceOurAdapterInBothFormats(AdapterMethod method)
    {
        var ours = Path.Combine(_dir, "adapter.safetensors");
        Tensor expected;
        using (var model = StableDiffusionLoader.Load(Folder))
        {
            var options = new AdapterOptions { Method = method, Rank = 4, Alpha = 3, RampSteps = 10, InitScale = 0.3 };
            AdapterInjector.Inject(model.Unet, options, InjectionTargets.UNetAttention, "unet");
            var entries = AdapterComponents.Collect(ActiveAdapters.Components(model));
            using (no_grad())
                foreach (var e in entries)
                {
                    foreach (var p in e.Adapter.AdapterParameters()) p.Tensor.copy_(randn_like(p.Tensor) * 0.2);
                    if (e.Adapter is SingLoraLinear s) s.StepCount = 4; // mid-ramp: u = 0.4
                    e.Adapter.InvalidateCaches();
                }
            DpeftAdapterFile.Save(ours, entries, "test-base");
            expected = UNetOutput(model);
            foreach (var e in entries) e.Adapter.Enabled = false;
            Assert.True(TensorAssert.MaxAbsDiff(UNetOutput(model), expected) > 1e-2, "the adapter should change the output a lot");
        }
        var inspect = Dpeft("adapter", "inspect", ours);
        Assert.Contains($"method:      {method}", inspect.Out);

        foreach (var format in new[] { "kohya", "diffusers" })
        {
            var target = Path.Combine(_dir, $"exported.{format}.safetensors");
            var r = Dpeft("adapter", "export", ours, "--format", format, "--out", target);
            Assert.True(r.Code == 0, r.Err);
            using var fresh = StableDiffusionLoader.Load(Folder);
            using var active = ActiveAdapters.Apply(fresh, [new AdapterSpec(target)]);
            Assert.Equal(AdapterMethod.Dora == method ? AdapterMethod.Dora : AdapterMethod.Lora, active.Loaded[0].Result.Layers[0].Adapter.Method);
            // Float rounding of refactored factors, amplified through the UNet, stays far below the adapter's own effect (> 1e-2).
            TensorAssert.Close(UNetOutput(fresh), expected, 2e-4, 1e-3, $"{method} exported as {format}");
        }
    }

    [Fact]
    public void MergeBakesTheAdapterIntoAFolderAndASingleFile()
    {
        // Folder → folder: the merged weights are diffusers' fused weights, and the merged model computes what base + adapter did.
        Tensor withAdapter;
        using (var model = StableDiffusionLoader.Load(Folder))
        using (ActiveAdapters.Apply(model, [new AdapterSpec(Kohya)]))
            withAdapter = UNetOutput(model);
        var merged = Path.Combine(_dir, "merged");
        var r = Dpeft("adapter", "merge", "--model", Folder, "--adapter", Kohya, "--out", merged);
        Assert.True(r.Code == 0, r.Err);
        using (var model = StableDiffusionLoader.Load(merged))
        {
            TensorAssert.Close(UNetOutput(model), withAdapter, 1e-4, 1e-4, "merged folder");
            using var io = SafetensorsFile.Open(GoldenData.FileOf("lora_kohya_tiny", "io"));
            const string key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight";
            var weight = model.Unet.state_dict()[key["unet.".Length..]];
            TensorAssert.Close(weight, io.Read("fused.scale1p0." + key), 1e-5, 1e-4, key);
        }
        Assert.True(File.Exists(Path.Combine(merged, "tokenizer", "vocab.json")));

        // Single file → single file (fp16 stays fp16).
        var single = GoldenData.FileOf("tiny_sd15_single_file", "checkpoint");
        var mergedFile = Path.Combine(_dir, "merged.safetensors");
        r = Dpeft("adapter", "merge", "--model", single, "--configs-from", Folder, "--adapter", Kohya + ":0.5", "--out", mergedFile);
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(SafetensorsFile.ReadHeader(single).Entries.Keys.Order(), SafetensorsFile.ReadHeader(mergedFile).Entries.Keys.Order());
        Assert.All(SafetensorsFile.ReadHeader(mergedFile).Entries.Values, e => Assert.Equal(SafetensorsDType.F16, e.DType));
        using (var baseModel = StableDiffusionLoader.Load(single, configsFrom: Folder))
        using (var mergedModel = StableDiffusionLoader.Load(mergedFile, configsFrom: Folder))
        using (ActiveAdapters.Apply(baseModel, [new AdapterSpec(Kohya, 0.5)]))
            TensorAssert.Close(UNetOutput(mergedModel), UNetOutput(baseModel), 2e-3, 1e-2, "merged single file (fp16 weights)");
    }

    /// <summary>A folder whose UNet is sharded, with a sharded fp16 variant beside it: the merged folder holds one
    /// main UNet file and none of the source's shards or indexes (a stale variant index would point at missing shards).</summary>
    [Fact]
    public void MergeOfAShardedFolderWritesOneFileAndDropsEveryOldIndex()
    {
        var src = Path.Combine(_dir, "sharded");
        foreach (var file in Directory.EnumerateFiles(Folder, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(src, Path.GetRelativePath(Folder, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var unetDir = Path.Combine(src, "unet");
        foreach (var f in Directory.GetFiles(unetDir, "*.safetensors")) File.Delete(f);
        using (var io = SafetensorsFile.Open(Path.Combine(Folder, "unet", "diffusion_pytorch_model.safetensors")))
        {
            var tensors = io.Entries.Keys.ToDictionary(k => k, k => io.Read(k));
            Loading.ShardedSafetensorsTests.WriteShards(unetDir, "diffusion_pytorch_model", tensors, 2);
            Loading.ShardedSafetensorsTests.WriteShards(unetDir, "diffusion_pytorch_model.fp16", tensors.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float16)), 2);
        }
        File.Move(Path.Combine(unetDir, "diffusion_pytorch_model.fp16.safetensors.index.json"), Path.Combine(unetDir, "diffusion_pytorch_model.safetensors.index.fp16.json"));

        Tensor withAdapter;
        var merged = Path.Combine(_dir, "merged-sharded");
        using (var model = StableDiffusionLoader.Load(src))
        {
            using (ActiveAdapters.Apply(model, [new AdapterSpec(Kohya)])) withAdapter = UNetOutput(model);
            AdapterMerge.Write(src, model, [new AdapterSpec(Kohya)], merged);
        }
        Assert.Equal(["diffusion_pytorch_model.safetensors"], Directory.GetFiles(Path.Combine(merged, "unet")).Select(Path.GetFileName).Where(n => n != "config.json"));
        using (var model = StableDiffusionLoader.Load(merged))
            TensorAssert.Close(UNetOutput(model), withAdapter, 1e-4, 1e-4, "merged from a sharded folder");
    }

    [Fact]
    public void GenerateAppliesAdaptersAndRecordsThem()
    {
        string[] common = ["generate", "--model", Folder, "--prompt", "a fox", "--steps", "2", "--width", "32", "--height", "32", "--quiet"];
        Assert.Equal(0, Dpeft([.. common, "--out", Path.Combine(_dir, "plain")]).Code);
        var r = Dpeft([.. common, "--out", Path.Combine(_dir, "lora"), "--adapter", Kohya + ":0.5"]);
        Assert.True(r.Code == 0, r.Err);
        var png = Path.Combine(_dir, "lora", "0001-a-fox", "000-s0.png");
        Assert.Contains("Lora weights: \"lora_kohya_tiny: 0.5\"", PngText.Get(PngText.Read(png), "parameters"));
        Assert.NotEqual(ImageLoader.Load(Path.Combine(_dir, "plain", "0001-a-fox", "000-s0.png")).Pixels, ImageLoader.Load(png).Pixels);
        var missing = Dpeft([.. common, "--out", Path.Combine(_dir, "x"), "--adapter", "/nope/a.safetensors"]);
        Assert.NotEqual(0, missing.Code);
        Assert.Contains("/nope/a.safetensors", missing.Err);
    }
}
