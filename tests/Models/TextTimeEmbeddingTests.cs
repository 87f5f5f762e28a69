using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

/// <summary>
/// The UNet's pooled text embedding (diffusers' <c>addition_embed_type: "text"</c>): the attention pooling against a
/// per-element reference written from upstream's formula, diffusers' key names, the config, and that the caption then
/// reaches a UNet that has no attention at all.
/// </summary>
public sealed class TextTimeEmbeddingTests
{
    [Fact]
    public void AttentionPoolingIsTheClassTokensSoftmaxAverageOfItsValuesPerHead()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(3);
        const int b = 2, l = 3, w = 4, heads = 2, d = w / heads;
        var pool = new AttentionPooling(heads, w);
        var x = randn(b, l, w);
        var actual = pool.call(x);
        Assert.Equal(new long[] { b, w }, actual.shape);

        var p = pool.named_parameters().ToDictionary(t => t.name, t => t.parameter.data<float>().ToArray());
        float[] X = x.data<float>().ToArray(), got = actual.data<float>().ToArray();
        // Linear(v) = W v + bias, W [out, in] row-major.
        float[] Linear(string name, float[] v) => Enumerable.Range(0, w)
            .Select(o => p[$"{name}.bias"][o] + Enumerable.Range(0, w).Sum(i => p[$"{name}.weight"][o * w + i] * v[i])).ToArray();
        for (int n = 0; n < b; n++)
        {
            var tokens = new List<float[]>();
            var cls = Enumerable.Range(0, w).Select(c => Enumerable.Range(0, l).Average(t => X[(n * l + t) * w + c]) + p["positional_embedding"][c]).Select(v => (float)v).ToArray();
            tokens.Add(cls);
            for (int t = 0; t < l; t++) tokens.Add(X.AsSpan((n * l + t) * w, w).ToArray());
            var q = Linear("q_proj", cls);
            var keys = tokens.Select(t => Linear("k_proj", t)).ToList();
            var values = tokens.Select(t => Linear("v_proj", t)).ToList();
            for (int h = 0; h < heads; h++)
            {
                var scores = keys.Select(k => Enumerable.Range(h * d, d).Sum(c => (double)q[c] * k[c]) / Math.Sqrt(d)).ToArray();
                double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                for (int c = h * d; c < (h + 1) * d; c++)
                {
                    double expected = Enumerable.Range(0, keys.Count).Sum(j => Math.Exp(scores[j] - max) / sum * values[j][c]);
                    Assert.True(Math.Abs(expected - got[n * w + c]) < 1e-5, $"item {n} channel {c}: {got[n * w + c]} against {expected}");
                }
            }
        }
    }

    /// <summary>norm1 → pool → proj → norm2: at initialisation (LayerNorms without scale or shift) the output is standardized
    /// per item, and the input per token only counts up to its own scale and offset.</summary>
    [Fact]
    public void TheTextEmbeddingIsNormalizedOnTheWayInAndOut()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(4);
        var embedding = new TextTimeEmbedding(8, 12, heads: 2);
        var x = randn(3, 5, 8);
        var y = embedding.call(x);
        Assert.Equal(new long[] { 3, 12 }, y.shape);
        TensorAssert.Close(y.mean([1]), zeros(3), 1e-5, 0, "per-item mean");
        TensorAssert.Close(y.var([1], unbiased: false), ones(3), 1e-3, 0, "per-item variance");
        TensorAssert.Close(embedding.call(x * 10 + 3), y, 1e-4, 1e-4, "an input scaled and shifted per token");
        Assert.True(TensorAssert.MaxAbsDiff(embedding.call(x * tensor(new float[] { 1, 2, 3, 4, 5, 6, 7, 8 })), y) > 1e-2, "the features' proportions should count");
    }

    [Fact]
    public void ABfloat16UNetWithTheTextEmbeddingTracksFloat32()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(6);
        using var unet = new UNet2DConditionModel(AttentionFree(text: true));
        unet.eval();
        UNetBehaviourTests.AssertBfloat16TracksFloat32(unet, randn(2, 4, 8, 8), tensor(new long[] { 30, 700 }), randn(2, 5, 24));
    }

    [Fact]
    public void TheUNetsTextEmbeddingHasDiffusersKeyNames()
    {
        using var unet = new UNet2DConditionModel(AttentionFree(text: true));
        var keys = unet.state_dict().Keys.Where(k => k.StartsWith("add_embedding.", StringComparison.Ordinal)).Order(StringComparer.Ordinal);
        Assert.Equal(new[]
        {
            "add_embedding.norm1.bias", "add_embedding.norm1.weight", "add_embedding.norm2.bias", "add_embedding.norm2.weight",
            "add_embedding.pool.k_proj.bias", "add_embedding.pool.k_proj.weight", "add_embedding.pool.positional_embedding",
            "add_embedding.pool.q_proj.bias", "add_embedding.pool.q_proj.weight", "add_embedding.pool.v_proj.bias", "add_embedding.pool.v_proj.weight",
            "add_embedding.proj.bias", "add_embedding.proj.weight",
        }, keys);
        Assert.Equal(new long[] { 1, 24 }, unet.state_dict()["add_embedding.pool.positional_embedding"].shape);
        Assert.Equal(new long[] { 64, 24 }, unet.state_dict()["add_embedding.proj.weight"].shape);   // time embedding: 4 × 16
        Assert.True(unet.state_dict().Sum(kv => kv.Value.numel()) >= AttentionFree(text: true).MinimumParameters());
    }

    [Fact]
    public void TheCaptionReachesAUNetWithoutAttentionOnlyThroughTheTextEmbedding()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(2, 4, 8, 8);
        var t = tensor(new long[] { 500, 500 });
        var ctx = randn(2, 5, 24);
        var other = randn(2, 5, 24);
        foreach (bool text in new[] { false, true })
        {
            manual_seed(11);
            using var unet = new UNet2DConditionModel(AttentionFree(text));
            unet.eval();
            double moved = TensorAssert.MaxAbsDiff(unet.Forward(x, t, ctx), unet.Forward(x, t, other));
            if (text) Assert.True(moved > 1e-3, $"with the text embedding the caption moved the output by only {moved:E2}");
            else Assert.Equal(0, moved);
        }
    }

    [Fact]
    public void UnderOneSeedEveryOtherInitialWeightIsTheSameWithTheTextEmbeddingAsWithout()
    {
        manual_seed(9);
        using var without = new UNet2DConditionModel(AttentionFree(text: false));
        manual_seed(9);
        using var with = new UNet2DConditionModel(AttentionFree(text: true));
        var other = with.state_dict();
        foreach (var (name, weight) in without.state_dict())
            Assert.True(TensorAssert.MaxAbsDiff(weight, other[name]) == 0, $"{name} differs");
    }

    [Fact]
    public void TrainingReachesTheTextEmbeddingsWeights()
    {
        manual_seed(5);
        using var unet = new UNet2DConditionModel(AttentionFree(text: true));
        unet.Forward(randn(2, 4, 8, 8), tensor(new long[] { 10, 900 }), randn(2, 5, 24)).pow(2).mean().backward();
        foreach (var (name, p) in unet.named_parameters().Where(n => n.name.StartsWith("add_embedding.", StringComparison.Ordinal)))
            Assert.True(p.grad is { } g && g.abs().max().item<float>() > 0, $"{name} got no gradient");
    }

    [Fact]
    public void TheConfigIsReadAndWrittenAsDiffusersWritesIt()
    {
        var config = ConfigJson.Parse(ConfigText("\"addition_embed_type\": \"text\", \"addition_embed_type_num_heads\": 4"), "unet/config.json");
        var parsed = UNet2DConditionConfig.FromJson(config);
        Assert.True(parsed.HasTextTimeEmbedding);
        Assert.Equal(4, parsed.AdditionEmbedTypeNumHeads);
        var json = parsed.ToJson();
        Assert.Equal("text", (string?)json["addition_embed_type"]);
        Assert.Equal(32, (int)json["cross_attention_dim"]!);   // one number: diffusers builds the text embedding from it as given
        Assert.Equal(json.ToJsonString(), UNet2DConditionConfig.FromJson(new ConfigJson("again", json)).ToJson().ToJsonString());
        // An equal-valued list (this port wrote one before) is read as that one number, and written as it.
        var listed = ConfigJson.Parse(ConfigText("\"addition_embed_type\": \"text\", \"addition_embed_type_num_heads\": 4"), "unet/config.json");
        listed.Root["cross_attention_dim"] = JsonNode.Parse("[32, 32]");
        Assert.Equal(32, (int)UNet2DConditionConfig.FromJson(listed).ToJson()["cross_attention_dim"]!);
        var plain = UNet2DConditionConfig.FromJson(ConfigJson.Parse(ConfigText("\"addition_embed_type\": null"), "unet/config.json"));
        Assert.False(plain.HasTextTimeEmbedding);
        Assert.Null(plain.ToJson()["addition_embed_type"]);
    }

    [Theory]
    [InlineData("\"addition_embed_type\": \"text_time\"", "addition_embed_type")]
    [InlineData("\"addition_embed_type\": \"text\", \"addition_embed_type_num_heads\": 5", "addition_embed_type_num_heads")]
    [InlineData("\"addition_embed_type\": \"text\", \"cross_attention_dim\": [24, 32]", "cross_attention_dim")]
    public void UnusableTextEmbeddingSettingsAreRejectedByNameAndFile(string extra, string key)
    {
        var config = ConfigJson.Parse(ConfigText(""), "unet/config.json");
        foreach (var (name, value) in JsonNode.Parse("{" + extra + "}")!.AsObject().ToList()) config.Root[name] = value?.DeepClone();
        var ex = Assert.Throws<InvalidDataException>(() => UNet2DConditionConfig.FromJson(config));
        Assert.Contains(key, ex.Message);
        Assert.Contains("unet/config.json", ex.Message);
    }

    /// <summary>Two levels of ResNets only (no transformer anywhere, no mid block): without a text embedding the caption cannot matter.</summary>
    private static UNet2DConditionConfig AttentionFree(bool text) => new()
    {
        BlockOutChannels = [16, 32], LayersPerBlock = [1, 1], DownBlockTypes = ["DownBlock2D", "DownBlock2D"], UpBlockTypes = ["UpBlock2D", "UpBlock2D"],
        HasMidBlock = false, NormNumGroups = 8, CrossAttentionDim = [24, 24], NumAttentionHeads = [2, 2], TransformerLayersPerBlock = [1, 1],
        AdditionEmbedType = text ? "text" : null, AdditionEmbedTypeNumHeads = 2,
    };

    private static string ConfigText(string extra) => "{\"block_out_channels\": [32, 64], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], " +
        "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"norm_num_groups\": 16, \"cross_attention_dim\": 32" + (extra.Length > 0 ? ", " + extra : "") + "}";
}
