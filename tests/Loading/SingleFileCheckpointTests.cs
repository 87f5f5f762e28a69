using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Loading;

[Trait("Category", "Golden")]
public sealed class SingleFileCheckpointTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static TheoryData<string> Cases => GoldenData.CasesOfKind("single_file");

    private static string Checkpoint(string c) => GoldenData.FileOf(c, "checkpoint");
    private static string SourceFolder(string c) => DiffusersModelFolderTests.FolderOf((string)GoldenData.Case(c)["source_case"]!);

    [Theory, MemberData(nameof(Cases))]
    public void EveryFileKeyMapsAsTheKeyMapSays(string caseName)
    {
        // key_map.json is the expected answer only; the mapping itself is derived from the layout and the inferred configs.
        var keyMap = (JsonObject)JsonNode.Parse(File.ReadAllText(GoldenData.FileOf(caseName, "key_map")))!;
        using var ckpt = SingleFileCheckpoint.Open(Checkpoint(caseName));
        Assert.Equal(ModelFamily.SD1, ckpt.Family);
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
        // The file holds the UNet rounded to float16 (= the fp16 variant) and float16-exact VAE / text-encoder weights.
        var folder = DiffusersModelFolder.Open(SourceFolder(caseName), variant: "fp16");
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

    [Theory, MemberData(nameof(Cases))]
    public void ConvertedUNetFileEqualsTheFp16Variant(string caseName)
    {
        using var ckpt = SingleFileCheckpoint.Open(Checkpoint(caseName));
        var path = _tmp.File("diffusion_pytorch_model.fp16.safetensors");
        SafetensorsWriter.Write(path, ckpt.UNet, ScalarType.Float16, new Dictionary<string, string> { ["format"] = "pt" });
        var folder = DiffusersModelFolder.Open(SourceFolder(caseName), variant: "fp16");
        using var reference = SafetensorsFile.Open(folder.WeightsPath("unet"));
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

    [Theory, MemberData(nameof(Cases))]
    public void ConfigsInferredFromShapesMatchTheFolder(string caseName)
    {
        var folder = DiffusersModelFolder.Open(SourceFolder(caseName));
        using var file = SafetensorsFile.Open(Checkpoint(caseName));
        var inferred = SingleFileCheckpoint.InferConfigs(file);
        AssertSame(folder.Config("unet"), inferred.UNet, "in_channels", "out_channels", "block_out_channels", "layers_per_block",
            "down_block_types", "up_block_types", "cross_attention_dim", "use_linear_projection", "mid_block_type",
            "attention_head_dim", "norm_num_groups", "transformer_layers_per_block", "conv_in_kernel", "conv_out_kernel", "flip_sin_to_cos", "freq_shift");
        AssertSame(folder.Config("vae"), inferred.Vae, "in_channels", "out_channels", "block_out_channels", "layers_per_block",
            "latent_channels", "down_block_types", "up_block_types", "norm_num_groups", "act_fn");
        Assert.Equal(0.18215, inferred.Vae.Double("scaling_factor"));
        AssertSame(folder.Config("text_encoder"), inferred.TextEncoder, "hidden_size", "num_hidden_layers", "intermediate_size",
            "vocab_size", "max_position_embeddings", "hidden_act", "eos_token_id", "bos_token_id", "pad_token_id", "layer_norm_eps");
        // Head counts are not in the shapes: the default is hidden_size / 64 (12 for SD 1.x's 768), at least 1.
        Assert.Equal(1, inferred.TextEncoder.Int("num_attention_heads"));

        // Given configs fill in what shapes cannot tell; what shapes tell still wins.
        var given = SingleFileConfigs.FromFolder(folder);
        var withGiven = SingleFileCheckpoint.InferConfigs(file, given);
        Assert.Equal(4, withGiven.TextEncoder.Int("num_attention_heads"));
        foreach (var k in given.UNet.Root.Select(kv => kv.Key).Where(k => k != "upcast_attention"))
            AssertSame(given.UNet, withGiven.UNet, k);
        foreach (var k in given.Vae.Root.Select(kv => kv.Key)) AssertSame(given.Vae, withGiven.Vae, k);
        var wrongRoot = (JsonObject)given.UNet.Root.DeepClone();
        wrongRoot["block_out_channels"] = new JsonArray(320, 640, 1280, 1280);
        var wrongWidth = ConfigJson.Parse(wrongRoot.ToJsonString(), "wrong");
        var corrected = SingleFileCheckpoint.InferConfigs(file, given with { UNet = wrongWidth });
        Assert.Equal([32, 32, 32, 32], corrected.UNet.Ints("block_out_channels"));
    }

    [Theory, MemberData(nameof(Cases))]
    public void MappingFollowsTheConfig(string caseName)
    {
        using var file = SafetensorsFile.Open(Checkpoint(caseName));
        var configs = SingleFileCheckpoint.InferConfigs(file);
        var unet = (JsonObject)configs.UNet.Root.DeepClone();
        unet["layers_per_block"] = 1;
        var ex = Assert.Throws<InvalidDataException>(() => LdmKeyMapping.UNet(file.Names, ConfigJson.Parse(unet.ToJsonString(), "lpb1"), file.Path));
        Assert.Contains("model.diffusion_model.", ex.Message);
        Assert.Contains("layers_per_block", ex.Message);

        var noAttention = (JsonObject)configs.UNet.Root.DeepClone();
        noAttention["down_block_types"] = new JsonArray("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D");
        var ex2 = Assert.Throws<InvalidDataException>(() => LdmKeyMapping.UNet(file.Names, ConfigJson.Parse(noAttention.ToJsonString(), "noattn"), file.Path));
        Assert.Contains("input_blocks.1.1.", ex2.Message);

        var vae = (JsonObject)configs.Vae.Root.DeepClone();
        vae["block_out_channels"] = new JsonArray(32, 32, 32);
        Assert.Throws<InvalidDataException>(() => LdmKeyMapping.Vae(file.Names, ConfigJson.Parse(vae.ToJsonString(), "3 levels"), file));
    }

    /// <summary>
    /// An SD 2.x-style file: the golden UNet/VAE plus the text encoder in OpenCLIP layout (fused in_proj, resblocks,
    /// one extra final block that diffusers drops, text_projection, logit_scale).
    /// </summary>
    private string WriteOpenClipVariant(string caseName, out Dictionary<string, Tensor> expectedText)
    {
        var folder = DiffusersModelFolder.Open(SourceFolder(caseName));
        using var te = folder.OpenWeights("text_encoder");
        using var original = SafetensorsFile.Open(Checkpoint(caseName));
        var tensors = new Dictionary<string, Tensor>();
        foreach (var k in original.Names.Where(k => !k.StartsWith(LdmKeyMapping.ClipPrefix, StringComparison.Ordinal))) tensors[k] = original.Read(k);
        var text = te.Keys.ToDictionary(k => k, k => te.Read(k));
        expectedText = text;
        string O = LdmKeyMapping.OpenClipPrefix;
        int layers = folder.Config("text_encoder").Int("num_hidden_layers");
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
        tensors[O + "text_projection"] = zeros(48, 32);
        tensors[O + "logit_scale"] = tensor(4.6f);
        var path = _tmp.File("sd2_style.safetensors");
        SafetensorsWriter.Write(path, tensors);
        return path;
    }

    [Theory, MemberData(nameof(Cases))]
    public void OpenClipTextEncoderIsSplitAndTruncated(string caseName)
    {
        using var scope = NewDisposeScope();
        var path = WriteOpenClipVariant(caseName, out var expected);
        using var ckpt = SingleFileCheckpoint.Open(path);
        Assert.Equal(ModelFamily.SD2, ckpt.Family);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), ckpt.TextEncoder.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, t) in expected)
            Assert.True(ckpt.TextEncoder.Read(k, ScalarType.Float32).equal(t).all().item<bool>(), k);
        Assert.Equal("gelu", ckpt.Configs.TextEncoder.String("hidden_act", ""));
        Assert.Equal(3, ckpt.Configs.TextEncoder.Int("num_hidden_layers"));
        Assert.Equal(32, ckpt.Configs.TextEncoder.Int("projection_dim"));
        Assert.Contains(LdmKeyMapping.OpenClipPrefix + "transformer.resblocks.3.ln_1.weight", ckpt.UnusedKeys);
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
