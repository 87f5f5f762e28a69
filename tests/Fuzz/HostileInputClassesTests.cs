using System.Text.Json.Nodes;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Cli;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// One test per class of hostile input the independent fuzzing run found (issue #16), each with the exact fault, so a
/// regression names its class rather than a random case. The fuzz tests beside this file cover the classes broadly.
/// </summary>
public sealed class HostileInputClassesTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static string Model => Path.Combine(GoldenData.Dir, "tiny_sd15_diffusers", "model");

    private static byte[] SmallPng() => PngWriter.Encode(RgbImage.Blank(16, 8, 200, 10, 10));

    private static long ManagedBytesDuring(Action act)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        act();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    private static T RefusedWithin<T>(long maxManagedBytes, Action act) where T : Exception
    {
        T? caught = null;
        long used = ManagedBytesDuring(() => caught = Assert.Throws<T>(act));
        Assert.True(used < maxManagedBytes, $"{used:N0} bytes allocated to refuse the input");
        return caught!;
    }

    [Theory]
    [InlineData(70_000u, 70_000u)]
    [InlineData(0x7FFFFFFFu, 1u)]
    [InlineData(0xFFFFFFFFu, 0xFFFFFFFFu)]
    public void PngDeclaringHugeDimensionsIsRefusedFromItsHeader(uint width, uint height)
    {
        var path = _tmp.File("huge.png");
        File.WriteAllBytes(path, ImageForge.PngWithSize(SmallPng(), width, height));
        var ex = RefusedWithin<ImageDecodeException>(1 << 20, () => ImageLoader.Load(path));
        Assert.Equal(path, ex.FilePath);
    }

    [Fact]
    public void PngDeclaringMorePixelsThanItsDataCanHoldIsRefusedBeforeDecoding()
    {
        var path = _tmp.File("8k.png");
        File.WriteAllBytes(path, ImageForge.PngWithSize(SmallPng(), 8000, 8000)); // under the pixel limit, but a few bytes of data
        var ex = RefusedWithin<ImageDecodeException>(1 << 20, () => ImageLoader.Load(path));
        Assert.Contains("truncated or corrupt PNG", ex.Message);
    }

    [Fact]
    public void JpegDeclaringHugeDimensionsIsRefusedBeforeDecoding()
    {
        var jpeg = JpegEncoder.Encode(RgbImage.Blank(16, 16, 1, 2, 3));
        var path = _tmp.File("huge.jpg");
        File.WriteAllBytes(path, ImageForge.JpegWithSize(jpeg, 60_000, 50_000)!);
        var ex = RefusedWithin<ImageDecodeException>(1 << 20, () => ImageLoader.Load(path));
        Assert.Contains("limit", ex.Message);
        Assert.Contains(ImageLimits.MaxPixelsVariable, ex.Message);
    }

    [Fact]
    public void TheLimitIsConfigurable()
    {
        var png = PngWriter.Encode(RgbImage.Blank(100, 100));
        Assert.Contains("limit of 9,999", Assert.Throws<ImageDecodeException>(() => ImageLoader.Decode(png, "x.png", new ImageLimits { MaxPixels = 9_999 })).Message);
        Assert.Equal(100, ImageLoader.Decode(png, "x.png", new ImageLimits { MaxPixels = 10_000 }).Width);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CompressedTextBombsAreCutOff(bool international)
    {
        var path = _tmp.File("bomb.png");
        File.WriteAllBytes(path, ImageForge.PngWithChunk(SmallPng(), international ? "iTXt" : "zTXt", ImageForge.TextBomb(international, 256 << 20)));
        var ex = RefusedWithin<ImageDecodeException>(32 << 20, () => PngText.Read(path));
        Assert.Contains("decompression bomb", ex.Message);
        Assert.Equal(16, ImageLoader.Load(path).Width); // the pixels themselves are fine
    }

    [Fact]
    public void OtherFormatsThanPngJpegAndWebPAreNotHandedToSkia()
    {
        var path = _tmp.File("really-a-gif.png");
        File.WriteAllBytes(path, [.. "GIF89a"u8, 1, 0, 1, 0, 0, 0, 0, 0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, 0x3B]);
        Assert.Contains("supported format", Assert.Throws<ImageDecodeException>(() => ImageLoader.Load(path)).Message);
    }

    [Fact]
    public void ADeviceLinkedAsAnImageIsReadByItsSizeNotForever()
    {
        if (!File.Exists("/dev/zero")) return;
        var path = _tmp.File("zero.png");
        File.CreateSymbolicLink(path, "/dev/zero");
        Assert.Contains("empty", Assert.Throws<ImageDecodeException>(() => ImageLoader.Load(path)).Message);
        Assert.Throws<ImageDecodeException>(() => PngText.Read(path));
    }

    [Fact]
    public void AnInstanceFolderWithAHostileImageKeepsTheOthers()
    {
        var folder = Directory.CreateDirectory(_tmp.File("instance")).FullName;
        File.WriteAllBytes(Path.Combine(folder, "a.png"), SmallPng());
        File.WriteAllBytes(Path.Combine(folder, "b.png"), ImageForge.PngWithSize(SmallPng(), 60_000, 60_000));
        File.WriteAllBytes(Path.Combine(folder, "c.jpg"), ImageForge.JpegWithSize(JpegEncoder.Encode(RgbImage.Blank(8, 8)), 65_000, 65_000)!);
        var warnings = new List<string>();
        var scan = InstanceDataset.Scan(folder, "a sks dog", ImageLoaderDecoder.Instance, warnings.Add);
        Assert.Equal(["a.png"], scan.Images.Select(i => Path.GetFileName(i.Path)));
        Assert.Equal(2, scan.Skipped.Count);
        Assert.All(warnings, w => Assert.Contains("does not decode", w));
    }

    [Theory]
    [InlineData("[", "]")]
    [InlineData("{a: ", "}")]
    public void DeeplyNestedYamlIsRefusedWithoutRecursing(string open, string close)
    {
        var path = _tmp.File("deep.yaml");
        File.WriteAllText(path, "model: m\nimages: " + string.Concat(Enumerable.Repeat(open, 200_000)) + "x" + string.Concat(Enumerable.Repeat(close, 200_000)) + "\n");
        var ex = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Load(path));
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void YamlTheParserItselfFailsOnIsStillATrainConfigException()
    {
        // YamlDotNet's scanner throws InvalidOperationException (not a YamlException) on this unterminated flow sequence.
        var path = _tmp.File("scanner.yaml");
        File.WriteAllText(path, "model: m\nvalidation-prompt: [x\0\0\0\u0001\nvalidation-seeds: [1, 2, 3]\n");
        Assert.Contains(path, Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Load(path)).Message);
    }

    [Fact]
    public void YamlAliasesAreRefused()
    {
        var path = _tmp.File("alias.yaml");
        File.WriteAllText(path, "model: &m models/sd15\nimages: *m\n");
        Assert.Contains("aliases", Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Load(path)).Message);
    }

    public static TheoryData<string, string, string> BadUNetValues => new()
    {
        { "in_channels", "\"4\"", "in_channels" },
        { "in_channels", "4.5", "in_channels" },
        { "in_channels", "-4", "in_channels" },
        { "center_input_sample", "\"false\"", "center_input_sample" },
        { "act_fn", "7", "act_fn" },
        { "down_block_types", "[\"CrossAttnDownBlock2D\", null, \"CrossAttnDownBlock2D\", \"DownBlock2D\"]", "down_block_types" },
        { "block_out_channels", "[32, 32, null, 32]", "block_out_channels" },
        { "block_out_channels", "[30, 32, 32, 32]", "divisible by norm_num_groups" },
        { "layers_per_block", "-1", "layers_per_block" },
        { "attention_head_dim", "0", "attention_head_dim" },
        { "norm_eps", "Infinity", "norm_eps" },
        { "conv_in_kernel", "4", "conv_in_kernel" },
        { "sample_size", "1e30", "sample_size" },
    };

    [Theory, MemberData(nameof(BadUNetValues))]
    public void ConfigValuesOfTheWrongTypeOrRangeNameTheFileAndKey(string key, string value, string fault)
    {
        var text = File.ReadAllText(Path.Combine(Model, "unet", "config.json"));
        var json = JsonNode.Parse(text)!.AsObject();
        json.Remove(key);
        var path = _tmp.File("config.json");
        File.WriteAllText(path, json.ToJsonString().Insert(1, $"\"{key}\": {value},"));
        var ex = Assert.Throws<InvalidDataException>(() => UNet2DConditionConfig.Load(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains(fault, ex.Message);
    }

    [Fact]
    public void RepeatedConfigKeysAreRefused()
    {
        var path = _tmp.File("config.json");
        File.WriteAllText(path, """{"in_channels": 4, "in_channels": 8}""");
        var ex = Assert.Throws<InvalidDataException>(() => ConfigJson.Load(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("in_channels", ex.Message);
    }

    [Fact]
    public void AConfigFarLargerThanItsWeightsIsRefusedBeforeAllocating()
    {
        var folder = Path.Combine(_tmp.Path, "big");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Model, "unet", "config.json")))!.AsObject();
        config["block_out_channels"] = new JsonArray(16384, 16384, 16384, 16384);
        config["norm_num_groups"] = 32;
        ModelFolderFuzzTests.LinkedCopy(Model, folder, Path.Combine("unet", "config.json"), System.Text.Encoding.UTF8.GetBytes(config.ToJsonString()));
        var ex = RefusedWithin<InvalidDataException>(64 << 20, () => StableDiffusionLoader.Load(folder));
        Assert.Contains("do not belong together", ex.Message);
        Assert.Contains(Path.Combine(folder, "unet", "config.json"), ex.Message);
    }

    [Fact]
    public void AbsurdSchedulerSizesAreRefused()
    {
        var ex = Assert.Throws<InvalidDataException>(() => SchedulerConfig.FromJson(ConfigJson.Parse("""{"num_train_timesteps": 1000000000}""", "s.json")));
        Assert.Contains("num_train_timesteps", ex.Message);
    }

    [Fact]
    public void ModelIndexEntriesOfTheWrongShapeAreRefused()
    {
        var folder = Path.Combine(_tmp.Path, "index");
        ModelFolderFuzzTests.LinkedCopy(Model, folder, "model_index.json",
            System.Text.Encoding.UTF8.GetBytes(File.ReadAllText(Path.Combine(Model, "model_index.json")).Replace("\"UNet2DConditionModel\"", "7")));
        var ex = Assert.Throws<InvalidDataException>(() => StableDiffusionLoader.Load(folder));
        Assert.Contains("model_index.json", ex.Message);
        Assert.Contains("'unet'", ex.Message);
    }

    [Fact]
    public void SingleFileTensorsOfTheWrongRankAreRefused()
    {
        var raw = RawSafetensors.Read(File.ReadAllBytes(GoldenData.FileOf("tiny_sd15_single_file", "checkpoint")));
        int at = raw.Tensors.FindIndex(t => t.Name == "model.diffusion_model.input_blocks.0.0.weight");
        raw.Tensors[at] = RawSafetensors.Reshaped(raw.Tensors[at], [4]);
        var path = _tmp.File("rank.safetensors");
        File.WriteAllBytes(path, raw.Write());
        var ex = Assert.Throws<InvalidDataException>(() => SingleFileCheckpoint.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("input_blocks.0.0.weight", ex.Message);
    }

    private string OurAdapter(Func<JsonArray, JsonArray>? targets = null, Func<JsonObject, JsonObject>? options = null)
    {
        using var model = StableDiffusionLoader.Load(Model);
        AdapterInjector.Inject(model.Unet, new AdapterOptions { Rank = 2 }, InjectionTargets.UNetAttention, AdapterComponents.UNet);
        var path = _tmp.File($"ours{Guid.NewGuid():N}.safetensors");
        DpeftAdapterFile.Save(path, AdapterComponents.Collect(ActiveAdapters.Components(model)), "base");
        var raw = RawSafetensors.Read(File.ReadAllBytes(path));
        if (targets is not null) raw.Metadata["targets"] = targets(JsonNode.Parse(raw.Metadata["targets"])!.AsArray()).ToJsonString();
        if (options is not null) raw.Metadata["options"] = options(JsonNode.Parse(raw.Metadata["options"])!.AsObject()).ToJsonString();
        File.WriteAllBytes(path, raw.Write());
        return path;
    }

    public static TheoryData<string, string, bool> BadTargets => new()
    {
        // key, value, whether only a model can tell (inspect and export read the file alone and accept it)
        { "path", "null", false }, { "component", "null", false }, { "path", "\"\"", false }, { "rank", "1000000000", false },
        { "rank", "-2", false }, { "alpha", "\"NaN\"", false }, { "in_features", "-5", false },
        { "path", "\"no.such.module\"", true }, { "path", "\"conv_in\"", true },
    };

    [Theory, MemberData(nameof(BadTargets))]
    public void AdapterTargetsThatAreMissingNullOrMisshapenNameTheFile(string key, string value, bool onlyAModelCanTell)
    {
        var path = OurAdapter(targets: t => { t[0]![key] = JsonNode.Parse(value); return t; });
        using var model = StableDiffusionLoader.Load(Model);
        var components = ActiveAdapters.Components(model);
        var entryPoints = new (bool NeedsModel, Action Act)[]
        {
            (true, () => LoraImporter.Load(path, components)), (false, () => AdapterInspector.Inspect(path)),
            (false, () => StandaloneAdapters.Load(path)), (true, () => DpeftAdapterFile.Load(path, components, trainable: true)),
        };
        foreach (var (needsModel, act) in entryPoints.Where(e => e.NeedsModel || !onlyAModelCanTell))
        {
            var ex = RefusedWithin<InvalidDataException>(64 << 20, act);
            Assert.Contains(path, ex.Message);
            Assert.Empty(AdapterInjector.AdaptedLayers(model.Unet)); // nothing half-applied
        }
    }

    [Fact]
    public void AnAdapterRankItsTensorsCannotHoldIsRefusedBeforeAllocating()
    {
        var path = OurAdapter(targets: t => { t[0]!["rank"] = 60_000; return t; });
        using var model = StableDiffusionLoader.Load(Model);
        var ex = RefusedWithin<InvalidDataException>(16 << 20, () => LoraImporter.Load(path, ActiveAdapters.Components(model)));
        Assert.Contains("needs at least", ex.Message);
        Assert.Contains("needs at least", RefusedWithin<InvalidDataException>(16 << 20, () => StandaloneAdapters.Load(path)).Message);
    }

    [Theory]
    [InlineData("dropout", "1.5")]
    [InlineData("sds_tolerance", "-1")]
    [InlineData("method", "\"7\"")]
    [InlineData("method", "\"Lora, Dora\"")]
    [InlineData("rank", "0")]
    public void AdapterOptionsOutOfRangeNameTheFile(string key, string value)
    {
        var path = OurAdapter(options: o => { o[key] = JsonNode.Parse(value); return o; });
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => AdapterInspector.Inspect(path)).Message);
    }

    [Fact]
    public void NonFiniteKohyaAlphaIsRefusedAndTheModelIsLeftAsItWas()
    {
        var raw = RawSafetensors.Read(File.ReadAllBytes(GoldenData.FileOf("lora_kohya_tiny", "lora")));
        int at = raw.Tensors.FindLastIndex(t => t.Name.EndsWith(".alpha", StringComparison.Ordinal));
        raw.Tensors[at] = raw.Tensors[at] with { DType = "F32", Shape = [], Data = BitConverter.GetBytes(float.NaN) };
        var path = _tmp.File("nan-alpha.safetensors");
        File.WriteAllBytes(path, raw.Write());
        using var model = StableDiffusionLoader.Load(Model);
        var ex = Assert.Throws<InvalidDataException>(() => LoraImporter.Load(path, ActiveAdapters.Components(model)));
        Assert.Contains(raw.Tensors[at].Name, ex.Message);
        Assert.Empty(AdapterInjector.AdaptedLayers(model.Unet));
        Assert.Empty(AdapterInjector.AdaptedLayers(model.TextEncoder));
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => AdapterInspector.Inspect(path)).Message);
    }

    [Theory]
    [InlineData("""{"prompt": "p", "adapter": [null]}""", "adapter")]
    [InlineData("""{"prompt": null}""", "prompt")]
    [InlineData("""{"prompt": "p", "n": 2000000000}""", "n must be at most")]
    [InlineData("""{"prompt": "p", "adapter": ["x.safetensors:nan"]}""", "finite scale")]
    [InlineData("""{"prompt": "p", "prompt": "q"}""", "Duplicate")]
    public void PromptFileFaultsNameTheFileAndLine(string line, string fault)
    {
        var path = _tmp.File("prompts.jsonl");
        File.WriteAllLines(path, ["a cat", line]);
        var ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(path, new GenerationOptions()));
        Assert.Contains($"{path}:2", ex.Message);
        Assert.Contains(fault, ex.Message);
    }

    [Fact]
    public void MegabytePromptsAreRefused()
    {
        var path = _tmp.File("long.txt");
        File.WriteAllText(path, new string('a', 2 << 20));
        Assert.Contains("longer than", Assert.Throws<InvalidDataException>(() => PromptFile.Read(path, new GenerationOptions())).Message);
    }

    [Fact]
    public void TheCliTurnsABadFileIntoOneErrorLineAndExitCode2()
    {
        var path = OurAdapter(targets: t => { t[0]!["component"] = null; return t; });
        var o = new StringWriter();
        var e = new StringWriter();
        Assert.Equal(2, Program.Run(["adapter", "inspect", path], o, e));
        var lines = e.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(path, lines[0]);

        var broken = _tmp.File("broken.safetensors");
        File.WriteAllBytes(broken, [1, 2, 3]);
        Assert.Equal(2, Program.Run(["adapter", "inspect", broken], o, e = new StringWriter()));
        Assert.DoesNotContain("   at ", e.ToString());
    }
}
