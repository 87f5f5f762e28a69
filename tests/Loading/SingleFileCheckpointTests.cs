using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Loading;

[Trait("Category", "Golden")]
public sealed class SingleFileCheckpointTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static TheoryData<string> Cases => GoldenData.CasesOfKind("single_file");

    private static string Checkpoint(string c) => GoldenData.FileOf(c, "checkpoint");
    private static GoldenFolderCase Source(string c) => GoldenFolderCase.Load(GoldenSingleFileCase.SourceCase(c));
    private static string SourceFolder(string c) => Source(c).ModelFolder;

    /// <summary>The source folder with the weight variant of the run the file reproduces (the file holds those weights).</summary>
    private static DiffusersModelFolder ReproducedFolder(string c)
    {
        var source = Source(c);
        return DiffusersModelFolder.Open(source.ModelFolder, GoldenFolderCase.VariantOf(source.Run(GoldenSingleFileCase.ReproducedRun(c))));
    }

    /// <summary>The case's family (from its original config), or else the one its keys show.</summary>
    private static ModelFamily FamilyOf(string c, SafetensorsFile file) => GoldenSingleFileCase.Family(c) ?? SingleFileCheckpoint.DetectFamily(file.Names);

    [Theory, MemberData(nameof(Cases))]
    public void EveryFileKeyMapsAsTheKeyMapSays(string caseName)
    {
        // key_map.json is the expected answer only; the mapping itself is derived from the layout and the inferred configs.
        var keyMap = (JsonObject)JsonNode.Parse(File.ReadAllText(GoldenData.FileOf(caseName, "key_map")))!;
        using var ckpt = SingleFileCheckpoint.Open(Checkpoint(caseName));
        if (GoldenSingleFileCase.Family(caseName) is { } family) Assert.Equal(family, ckpt.Family);
        else output.WriteLine($"skipped the family check: {caseName} names no original config or key prefixes");
        using var file = SafetensorsFile.Open(Checkpoint(caseName));
        int mapped = 0;
        foreach (var (fileKey, node) in keyMap)
        {
            var component = (string)node!["component"]!;
            var target = (string)node["key"]!;
            var src = (RenamedTensorSource)ckpt.Component(component);
            Assert.True(src.Mappings.TryGetValue(target, out var m), $"{fileKey}: expected to map to {component} '{target}'");
            Assert.Equal(fileKey, m!.SourceKey);
            var expectedShape = node["shape_in_model"] is JsonArray s ? s.Select(n => (long)n!).ToArray() : file.Entry(fileKey).Shape;
            Assert.Equal(expectedShape, src.ShapeOf(target));
            mapped++;
        }
        Assert.Equal(mapped, ckpt.UNet.Keys.Count + ckpt.Vae.Keys.Count + ckpt.TextEncoder.Keys.Count);
        Assert.Equal(file.Names.Count(), mapped + ckpt.UnusedKeys.Count);
    }

    [Theory, MemberData(nameof(Cases))]
    public void ComponentsEqualTheDiffusersFolder(string caseName)
    {
        using var ckpt = SingleFileCheckpoint.Open(Checkpoint(caseName));
        // The file holds the weights of the run it reproduces (for the public case the fp16 variant's UNet and
        // float16-exact VAE / text-encoder weights), so it equals the folder read with that run's variant.
        var folder = ReproducedFolder(caseName);
        foreach (var component in new[] { "unet", "vae", "text_encoder" })
        {
            var mine = ckpt.Component(component);
            using var reference = folder.OpenWeights(component);
            Assert.Equal(reference.Keys.Order(StringComparer.Ordinal), mine.Keys.Order(StringComparer.Ordinal));
            foreach (var key in reference.Keys)
            {
                using var scope = NewDisposeScope();
                Assert.Equal(reference.ShapeOf(key), mine.ShapeOf(key));
                var expected = reference.Read(key, ScalarType.Float32);
                var actual = mine.Read(key, ScalarType.Float32);
                Assert.Equal(expected.shape, actual.shape);
                Assert.True(actual.equal(expected).all().item<bool>(), $"{component} '{key}' differs from {reference.Description}");
            }
        }
    }

    /// <summary>The file's UNet written back in diffusers layout, in the folder file's dtype, is that file byte for byte.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void ConvertedUNetFileEqualsTheFolderFileOfTheReproducedRun(string caseName)
    {
        using var ckpt = SingleFileCheckpoint.Open(Checkpoint(caseName));
        using var reference = SafetensorsFile.Open(ReproducedFolder(caseName).WeightsPath("unet"));
        var dtypes = reference.Entries.Values.Select(e => e.DType).Distinct().ToList();
        Assert.True(dtypes.Count == 1, $"{reference.Path}: mixed dtypes {string.Join(", ", dtypes)}");
        var path = _tmp.File(Path.GetFileName(reference.Path));
        SafetensorsWriter.Write(path, ckpt.UNet, dtypes[0].ToScalarType(), new Dictionary<string, string> { ["format"] = "pt" });
        using var converted = SafetensorsFile.Open(path);
        Assert.Equal(reference.Metadata, converted.Metadata);
        Assert.Equal(reference.Names.Order(StringComparer.Ordinal), converted.Names.Order(StringComparer.Ordinal));
        foreach (var name in reference.Names)
        {
            Assert.Equal(reference.Entry(name).DType, converted.Entry(name).DType);
            Assert.Equal(reference.Entry(name).Shape, converted.Entry(name).Shape);
            Assert.Equal(reference.ReadBytes(name), converted.ReadBytes(name));
        }
    }

    private static void AssertSame(ConfigJson expected, ConfigJson actual, params string[] keys)
    {
        foreach (var k in keys)
            Assert.True(JsonNode.DeepEquals(expected.Root[k], actual.Root[k]),
                $"{k}: expected {expected.Root[k]?.ToJsonString()} ({expected.Source}), inferred {actual.Root[k]?.ToJsonString()}");
    }

    /// <summary>The keys of <paramref name="keys"/> the folder's config states (transformers writes only a diff against its defaults).</summary>
    private string[] Stated(ConfigJson folderConfig, string[] keys)
    {
        var missing = keys.Where(k => !folderConfig.Has(k)).ToArray();
        if (missing.Length > 0) output.WriteLine($"skipped {string.Join(", ", missing)}: not stated in {folderConfig.Source}");
        return keys.Except(missing).ToArray();
    }

    // What SingleFileCheckpoint.InferConfigs reads from tensor shapes; everything else is a default or comes from configsFrom.
    private static readonly string[] UNetShapeKeys = ["in_channels", "out_channels", "conv_in_kernel", "conv_out_kernel", "layers_per_block", "block_out_channels",
        "down_block_types", "up_block_types", "mid_block_type", "cross_attention_dim", "use_linear_projection", "transformer_layers_per_block"];
    private static readonly string[] VaeShapeKeys = ["in_channels", "out_channels", "block_out_channels", "layers_per_block", "latent_channels", "down_block_types", "up_block_types"];
    private static readonly string[] TextShapeKeys = ["hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size", "max_position_embeddings"];

    [Theory, MemberData(nameof(Cases))]
    public void ConfigsInferredFromShapesMatchTheFolder(string caseName)
    {
        var folder = DiffusersModelFolder.Open(SourceFolder(caseName));
        using var file = SafetensorsFile.Open(Checkpoint(caseName));
        var inferred = SingleFileCheckpoint.InferConfigs(file);
        AssertSame(folder.Config("unet"), inferred.UNet, Stated(folder.Config("unet"), UNetShapeKeys));
        AssertSame(folder.Config("vae"), inferred.Vae, Stated(folder.Config("vae"), VaeShapeKeys));
        AssertSame(folder.Config("text_encoder"), inferred.TextEncoder, Stated(folder.Config("text_encoder"), TextShapeKeys));
    }

    /// <summary>
    /// Head counts are not in the shapes: without configs they are the documented defaults (UNet: 8 heads per level for
    /// SD 1.x, one head per 64 channels for SD 2.x; text encoder: hidden_size / 64, at least 1), and configsFrom replaces them.
    /// </summary>
    [Theory, MemberData(nameof(Cases))]
    public void HeadCountsAreTheDocumentedDefaultsUnlessConfigsFromGivesThem(string caseName)
    {
        var folder = DiffusersModelFolder.Open(SourceFolder(caseName));
        using var file = SafetensorsFile.Open(Checkpoint(caseName));
        var family = FamilyOf(caseName, file);
        var bare = SingleFileCheckpoint.InferConfigs(file);
        var widths = bare.UNet.Ints("block_out_channels");
        JsonNode unetDefault = family == ModelFamily.SD2 ? new JsonArray(widths.Select(w => (JsonNode)Math.Max(1, w / 64)).ToArray()) : 8;
        int textDefault = Math.Max(1, bare.TextEncoder.Int("hidden_size") / 64);
        Assert.True(JsonNode.DeepEquals(unetDefault, bare.UNet.Root["attention_head_dim"]),
            $"{family} UNet heads without configs: expected the default {unetDefault.ToJsonString()}, got {bare.UNet.Root["attention_head_dim"]?.ToJsonString()}");
        Assert.Equal(textDefault, bare.TextEncoder.Int("num_attention_heads"));

        var given = SingleFileConfigs.FromFolder(folder);
        var withFolder = SingleFileCheckpoint.InferConfigs(file, given);
        AssertSame(given.UNet, withFolder.UNet, "attention_head_dim");
        AssertSame(given.TextEncoder, withFolder.TextEncoder, "num_attention_heads");

        // Values that differ from the defaults whatever the folder says: configsFrom must win over the default.
        JsonNode otherHeads = unetDefault is JsonArray perLevel ? new JsonArray(perLevel.Select(h => (JsonNode)((int)h! + 1)).ToArray()) : 9;
        var unet = (JsonObject)given.UNet.Root.DeepClone();
        unet["attention_head_dim"] = otherHeads;
        var text = (JsonObject)given.TextEncoder.Root.DeepClone();
        text["num_attention_heads"] = textDefault + 1;
        var other = SingleFileCheckpoint.InferConfigs(file, given with
        {
            UNet = ConfigJson.Parse(unet.ToJsonString(), "other heads"), TextEncoder = ConfigJson.Parse(text.ToJsonString(), "other heads"),
        });
        Assert.True(JsonNode.DeepEquals(otherHeads, other.UNet.Root["attention_head_dim"]), $"UNet heads: {other.UNet.Root["attention_head_dim"]?.ToJsonString()}");
        Assert.Equal(textDefault + 1, other.TextEncoder.Int("num_attention_heads"));
    }

    /// <summary>
    /// A single file carries no generation_config.json: the model's default guidance is its --configs-from folder's, and
    /// without one there, none (so SD's 7.5); a malformed one there is refused naming it.
    /// </summary>
    [Theory, MemberData(nameof(Cases))]
    public void TheDefaultGuidanceIsTheConfigsFromFolders(string caseName)
    {
        string source = SourceFolder(caseName), folder = Path.Combine(_tmp.Path, "configs");
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(folder, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var generation = Path.Combine(folder, GenerationConfig.FileName);
        File.Delete(generation);
        using (var none = StableDiffusionLoader.Load(Checkpoint(caseName), configsFrom: folder))
        {
            Assert.Null(none.Generation);
            Assert.Equal(GenerationConfig.StableDiffusionGuidanceScale, none.DefaultGuidanceScale);
        }
        new GenerationConfig(3.25).Write(folder);
        using (var model = StableDiffusionLoader.Load(Checkpoint(caseName), configsFrom: folder))
            Assert.Equal(3.25, model.DefaultGuidanceScale);
        File.WriteAllText(generation, "{\"guidance_scale\": \"high\"}");
        var e = Assert.ThrowsAny<Exception>(() => StableDiffusionLoader.Load(Checkpoint(caseName), configsFrom: folder));
        Assert.Contains(generation, e.Message);
    }

    /// <summary>configsFrom fills in everything shapes cannot tell (norm groups, scaling factor, token ids...); what shapes tell still wins.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void ConfigsFromFillsInWhatShapesCannotTell(string caseName)
    {
        var folder = DiffusersModelFolder.Open(SourceFolder(caseName));
        using var file = SafetensorsFile.Open(Checkpoint(caseName));
        var given = SingleFileConfigs.FromFolder(folder);
        var withGiven = SingleFileCheckpoint.InferConfigs(file, given);
        AssertSame(given.UNet, withGiven.UNet, given.UNet.Root.Select(kv => kv.Key).ToArray());
        AssertSame(given.Vae, withGiven.Vae, given.Vae.Root.Select(kv => kv.Key).ToArray());
        AssertSame(given.TextEncoder, withGiven.TextEncoder, given.TextEncoder.Root.Select(kv => kv.Key).ToArray());

        var widths = given.UNet.Ints("block_out_channels");
        var wrongRoot = (JsonObject)given.UNet.Root.DeepClone();
        wrongRoot["block_out_channels"] = new JsonArray(widths.Select(w => (JsonNode)(w * 10)).ToArray());
        var corrected = SingleFileCheckpoint.InferConfigs(file, given with { UNet = ConfigJson.Parse(wrongRoot.ToJsonString(), "wrong widths") });
        Assert.Equal(widths, corrected.UNet.Ints("block_out_channels"));
    }

    [Theory, MemberData(nameof(Cases))]
    public void MappingFollowsTheConfig(string caseName)
    {
        using var file = SafetensorsFile.Open(Checkpoint(caseName));
        var configs = SingleFileCheckpoint.InferConfigs(file);
        int lpb = configs.UNet.Int("layers_per_block");
        var unet = (JsonObject)configs.UNet.Root.DeepClone();
        unet["layers_per_block"] = lpb > 1 ? lpb - 1 : lpb + 1;
        var ex = Assert.Throws<InvalidDataException>(() => LdmKeyMapping.UNet(file.Names, ConfigJson.Parse(unet.ToJsonString(), "other lpb"), file.Path));
        Assert.Contains("model.diffusion_model.", ex.Message);
        Assert.Contains("layers_per_block", ex.Message);

        // Without cross-attention blocks the file's attention keys of the down path are left over.
        var downTypes = configs.UNet.Root["down_block_types"]!.AsArray().Select(n => (string)n!).ToArray();
        var attentionBlocks = Enumerable.Range(0, downTypes.Length).Where(b => downTypes[b] == "CrossAttnDownBlock2D")
            .SelectMany(b => Enumerable.Range(1 + b * (lpb + 1), lpb)).ToHashSet();
        if (attentionBlocks.Count == 0) output.WriteLine($"skipped the block-type check: {caseName}'s UNet has no cross-attention down blocks");
        else
        {
            var noAttention = (JsonObject)configs.UNet.Root.DeepClone();
            noAttention["down_block_types"] = new JsonArray(downTypes.Select(_ => (JsonNode)"DownBlock2D").ToArray());
            var ex2 = Assert.Throws<InvalidDataException>(() => LdmKeyMapping.UNet(file.Names, ConfigJson.Parse(noAttention.ToJsonString(), "noattn"), file.Path));
            var listed = System.Text.RegularExpressions.Regex.Matches(ex2.Message, @"input_blocks\.(\d+)\.1\.").Select(m => int.Parse(m.Groups[1].Value)).ToList();
            Assert.True(listed.Count > 0 && listed.All(attentionBlocks.Contains), $"expected attention keys of input_blocks [{string.Join(", ", attentionBlocks)}] listed: {ex2.Message}");
        }

        var vaeWidths = configs.Vae.Ints("block_out_channels");
        var vae = (JsonObject)configs.Vae.Root.DeepClone();
        vae["block_out_channels"] = new JsonArray((vaeWidths.Length > 1 ? vaeWidths[..^1] : new[] { vaeWidths[0], vaeWidths[0] }).Select(w => (JsonNode)w).ToArray());
        Assert.Throws<InvalidDataException>(() => LdmKeyMapping.Vae(file.Names, ConfigJson.Parse(vae.ToJsonString(), "other levels"), file));
    }

    /// <summary>
    /// An SD 2.x-style file: the golden UNet/VAE plus the text encoder in OpenCLIP layout (fused in_proj, resblocks,
    /// one extra final block that diffusers drops, text_projection, logit_scale).
    /// </summary>
    private string WriteOpenClipVariant(string caseName, int projectionDim, out Dictionary<string, Tensor> expectedText)
    {
        var folder = DiffusersModelFolder.Open(SourceFolder(caseName));
        using var te = folder.OpenWeights("text_encoder");
        using var original = SafetensorsFile.Open(Checkpoint(caseName));
        var tensors = new Dictionary<string, Tensor>();
        foreach (var k in original.Names.Where(k => !k.StartsWith(LdmKeyMapping.ClipPrefix, StringComparison.Ordinal) && !k.StartsWith(LdmKeyMapping.OpenClipPrefix, StringComparison.Ordinal)))
            tensors[k] = original.Read(k);
        var text = te.Keys.ToDictionary(k => k, k => te.Read(k));
        expectedText = text;
        string O = LdmKeyMapping.OpenClipPrefix;
        int layers = folder.Config("text_encoder").Int("num_hidden_layers");
        int hidden = folder.Config("text_encoder").Int("hidden_size");
        for (int i = 0; i <= layers; i++)
        {
            int src = Math.Min(i, layers - 1);
            string R = $"{O}transformer.resblocks.{i}.";
            tensors[R + "attn.in_proj_weight"] = cat([text[$"text_model.encoder.layers.{src}.self_attn.q_proj.weight"], text[$"text_model.encoder.layers.{src}.self_attn.k_proj.weight"], text[$"text_model.encoder.layers.{src}.self_attn.v_proj.weight"]]);
            tensors[R + "attn.in_proj_bias"] = cat([text[$"text_model.encoder.layers.{src}.self_attn.q_proj.bias"], text[$"text_model.encoder.layers.{src}.self_attn.k_proj.bias"], text[$"text_model.encoder.layers.{src}.self_attn.v_proj.bias"]]);
            foreach (var (from, to) in new[] { ("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2") })
                foreach (var p in new[] { "weight", "bias" })
                    tensors[$"{R}{from}.{p}"] = text[$"text_model.encoder.layers.{src}.{to}.{p}"];
        }
        tensors[O + "token_embedding.weight"] = text["text_model.embeddings.token_embedding.weight"];
        tensors[O + "positional_embedding"] = text["text_model.embeddings.position_embedding.weight"];
        tensors[O + "ln_final.weight"] = text["text_model.final_layer_norm.weight"];
        tensors[O + "ln_final.bias"] = text["text_model.final_layer_norm.bias"];
        tensors[O + "text_projection"] = zeros(hidden, projectionDim);
        tensors[O + "logit_scale"] = tensor(4.6f);
        var path = _tmp.File("sd2_style.safetensors");
        SafetensorsWriter.Write(path, tensors);
        return path;
    }

    [Theory, MemberData(nameof(Cases))]
    public void OpenClipTextEncoderIsSplitAndTruncated(string caseName)
    {
        using var scope = NewDisposeScope();
        const int projectionDim = 24; // this test's own choice: the width of the text_projection it writes
        var path = WriteOpenClipVariant(caseName, projectionDim, out var expected);
        int layers = DiffusersModelFolder.Open(SourceFolder(caseName)).Config("text_encoder").Int("num_hidden_layers");
        using var ckpt = SingleFileCheckpoint.Open(path);
        Assert.Equal(ModelFamily.SD2, ckpt.Family);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), ckpt.TextEncoder.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, t) in expected)
            Assert.True(ckpt.TextEncoder.Read(k, ScalarType.Float32).equal(t).all().item<bool>(), k);
        Assert.Equal("gelu", ckpt.Configs.TextEncoder.String("hidden_act", "")); // the SD 2.x default: activations are not in the shapes
        Assert.Equal(layers, ckpt.Configs.TextEncoder.Int("num_hidden_layers"));
        Assert.Equal(projectionDim, ckpt.Configs.TextEncoder.Int("projection_dim"));
        Assert.Contains(LdmKeyMapping.OpenClipPrefix + $"transformer.resblocks.{layers}.ln_1.weight", ckpt.UnusedKeys);
        Assert.Contains(LdmKeyMapping.OpenClipPrefix + "logit_scale", ckpt.UnusedKeys);
        Assert.Equal(CheckpointFormat.SingleFile, CheckpointLayout.Detect(path).Format);
        Assert.Equal(ModelFamily.SD2, CheckpointLayout.Detect(path).Family);
    }

    [Fact]
    public void OtherLayoutsAreRefused()
    {
        using var scope = NewDisposeScope();
        var path = _tmp.File("sdxl_like.safetensors");
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor>
        {
            ["model.diffusion_model.input_blocks.0.0.weight"] = zeros(4, 4, 3, 3),
            ["conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"] = zeros(2, 2),
        });
        var ex = Assert.Throws<InvalidDataException>(() => SingleFileCheckpoint.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Equal(ModelFamily.Unknown, CheckpointLayout.Detect(path).Family);
        // The single-file family's one exception type; the specific refusal stays available as the inner exception.
        Assert.IsType<PickleCheckpointException>(Assert.Throws<InvalidDataException>(() => SingleFileCheckpoint.Open(_tmp.File("model.ckpt"))).InnerException);
    }
}
