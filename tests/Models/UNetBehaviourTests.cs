using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

/// <summary>Properties of the UNet not covered by the golden cases: broadcasting, odd latent sizes, the adapter
/// contract, training (gradients, bf16) and config validation. Tiny random models.</summary>
public sealed class UNetBehaviourTests
{
    private static UNet2DConditionConfig Tiny(int blocks = 2, bool linear = false) => new()
    {
        BlockOutChannels = blocks == 2 ? [16, 32] : [16, 16, 32],
        LayersPerBlock = Enumerable.Repeat(1, blocks).ToArray(),
        DownBlockTypes = blocks == 2 ? ["CrossAttnDownBlock2D", "DownBlock2D"] : ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = blocks == 2 ? ["UpBlock2D", "CrossAttnUpBlock2D"] : ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        NormNumGroups = 8,
        CrossAttentionDim = Enumerable.Repeat(24, blocks).ToArray(),
        NumAttentionHeads = Enumerable.Repeat(2, blocks).ToArray(),
        TransformerLayersPerBlock = Enumerable.Repeat(1, blocks).ToArray(),
        UseLinearProjection = linear,
    };

    private static UNet2DConditionModel Build(UNet2DConditionConfig config, int seed = 7)
    {
        manual_seed(seed);
        var unet = new UNet2DConditionModel(config);
        unet.eval();
        return unet;
    }

    [Fact]
    public void ScalarTimestepIsBroadcastOverTheBatch()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var unet = Build(Tiny());
        var x = randn(3, 4, 8, 8);
        var ctx = randn(3, 5, 24);
        var scalar = unet.Forward(x, tensor(321L), ctx);
        var perItem = unet.Forward(x, tensor(new long[] { 321, 321, 321 }), ctx);
        TensorAssert.Close(scalar, perItem, 0, 0, "scalar vs per-item timestep");
        var different = unet.Forward(x, tensor(new long[] { 321, 20, 321 }), ctx);
        Assert.True(TensorAssert.MaxAbsDiff(different[1], perItem[1]) > 1e-4, "the timestep has no effect");
    }

    [Theory]
    [InlineData(10, 13)]
    [InlineData(7, 5)]
    public void LatentSizesNotDivisibleByTheDownsamplingFactorKeepTheirSize(int h, int w)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var unet = Build(Tiny(blocks: 3, linear: true));
        var debug = new Dictionary<string, Tensor>();
        var y = unet.Forward(randn(2, 4, h, w), tensor(new[] { 10.5f, 900f }), randn(2, 3, 24), (n, t) => debug[n] = t);
        Assert.Equal(new long[] { 2, 4, h, w }, y.shape);
        // up_blocks.0 upsamples to the size of the second-deepest level (ceil(h/2), ceil(w/2)).
        Assert.Equal(new long[] { (h + 1) / 2, (w + 1) / 2 }, debug["up_blocks.0"].shape[2..]);
    }

    [Fact]
    public void AttentionProjectionsCanBeReplacedThroughTheModuleTree()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var unet = Build(Tiny());
        var x = randn(1, 4, 8, 8);
        var ctx = randn(1, 5, 24);
        var before = unet.Forward(x, tensor(5L), ctx);

        var block = (CrossAttnDownBlock2D)unet.down_blocks[0];
        var attn = block.attentions![0].transformer_blocks[0].attn2;
        var scaledQ = new Scaled(attn.to_q, 0.0);
        attn.register_module("to_q", null!);
        attn.register_module("to_q", scaledQ);
        attn.to_q = scaledQ;
        var names = unet.named_parameters().Select(p => p.name).ToHashSet();
        Assert.Contains("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.inner.weight", names);
        Assert.Contains("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0.weight", names);
        Assert.Contains("down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight", names);
        Assert.Contains("down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight", names);
        var after = unet.Forward(x, tensor(5L), ctx);
        Assert.True(TensorAssert.MaxAbsDiff(before, after) > 1e-5, "replacing to_q did not change the output");

        var ff = block.attentions[0].transformer_blocks[0].ff;
        var scaledOut = new Scaled(ff.net[2], 0.0);
        ff.net.register_module("2", null!);
        ff.net.register_module("2", scaledOut);
        ff.net[2] = scaledOut;
        var afterFf = unet.Forward(x, tensor(5L), ctx);
        Assert.True(TensorAssert.MaxAbsDiff(after, afterFf) > 1e-5, "replacing ff.net.2 did not change the output");
    }

    private sealed class Scaled : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> inner;
        private readonly double _factor;
        public Scaled(nn.Module<Tensor, Tensor> inner, double factor) : base(nameof(Scaled)) { this.inner = inner; _factor = factor; RegisterComponents(); }
        public override Tensor forward(Tensor x) => inner.call(x) * _factor;
    }

    [Fact]
    public void TrainingGradientsReachEveryParameter()
    {
        using var scope = NewDisposeScope();
        var unet = Build(Tiny(linear: true));
        unet.train();
        var y = unet.Forward(randn(2, 4, 8, 8), tensor(new long[] { 3, 999 }), randn(2, 5, 24));
        y.pow(2).mean().backward();
        foreach (var (name, p) in unet.named_parameters())
        {
            Assert.True(p.grad is not null, $"{name} received no gradient");
            Assert.True(p.grad!.isfinite().all().item<bool>(), $"{name} has a non-finite gradient");
            Assert.True(p.grad.abs().sum().item<float>() > 0, $"{name} has an all-zero gradient");
        }
    }

    [Fact]
    public void Bfloat16ForwardTracksFloat32()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var unet = Build(Tiny());
        var x = randn(2, 4, 8, 8);
        var ctx = randn(2, 5, 24);
        AssertBfloat16TracksFloat32(unet, x, tensor(new long[] { 50, 700 }), ctx);
    }

    /// <summary>The fp32 UNet's output, then the same UNet moved to bf16: within 5% of the output's largest value.</summary>
    internal static void AssertBfloat16TracksFloat32(UNet2DConditionModel unet, Tensor x, Tensor t, Tensor ctx)
    {
        var reference = unet.Forward(x, t, ctx);
        unet.to(ScalarType.BFloat16);
        var low = unet.Forward(x.to_type(ScalarType.BFloat16), t, ctx.to_type(ScalarType.BFloat16));
        Assert.Equal(ScalarType.BFloat16, low.dtype);
        double rel = TensorAssert.MaxAbsDiff(low, reference) / reference.abs().max().item<float>();
        Assert.True(rel < 0.05, $"bf16 vs fp32 relative error {rel:E2}");
    }

    [Theory]
    [InlineData("class_embed_type", "\"timestep\"")]
    [InlineData("num_attention_heads", "8")]
    [InlineData("resnet_time_scale_shift", "\"scale_shift\"")]
    [InlineData("up_block_types", "[\"UpBlock2D\", \"SimpleCrossAttnUpBlock2D\"]")]
    public void UnsupportedOptionsAreRejectedByName(string key, string value)
    {
        var config = ConfigJson.Parse(BaseConfigJson, "unet/config.json");
        config.Root[key] = JsonNode.Parse(value);
        var ex = Assert.Throws<InvalidDataException>(() => UNet2DConditionConfig.FromJson(config));
        Assert.Contains(key == "up_block_types" ? "SimpleCrossAttnUpBlock2D" : key, ex.Message);
        Assert.Contains("unet/config.json", ex.Message);
    }

    private const string BaseConfigJson = "{\"block_out_channels\": [32, 64], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], " +
        "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"norm_num_groups\": 16}";

    [Fact]
    public void PerBlockListsMustMatchTheNumberOfBlocks()
    {
        var config = ConfigJson.Parse(BaseConfigJson, "unet/config.json");
        config.Root["attention_head_dim"] = JsonNode.Parse("[2, 4, 8]");
        var ex = Assert.Throws<InvalidDataException>(() => UNet2DConditionConfig.FromJson(config));
        Assert.Contains("attention_head_dim", ex.Message);
    }

    [Theory]
    [InlineData("true", new[] { true, true })]
    [InlineData("[true, false]", new[] { true, false })]
    [InlineData("false", new[] { false, false })]
    public void OnlyCrossAttentionIsReadPerBlockAndWrittenBack(string json, bool[] expected)
    {
        var config = ConfigJson.Parse(BaseConfigJson, "unet/config.json");
        config.Root["only_cross_attention"] = JsonNode.Parse(json);
        var parsed = UNet2DConditionConfig.FromJson(config);
        Assert.Equal(expected, parsed.OnlyCrossAttention);
        var again = UNet2DConditionConfig.FromJson(new ConfigJson("again", parsed.ToJson()));
        Assert.Equal(expected, Enumerable.Range(0, 2).Select(again.OnlyCrossAttentionAt));
    }

    [Theory]
    [InlineData("[true]")]
    [InlineData("[true, \"yes\"]")]
    [InlineData("1")]
    public void MalformedOnlyCrossAttentionIsRejectedByName(string json)
    {
        var config = ConfigJson.Parse(BaseConfigJson, "unet/config.json");
        config.Root["only_cross_attention"] = JsonNode.Parse(json);
        var ex = Assert.Throws<InvalidDataException>(() => UNet2DConditionConfig.FromJson(config));
        Assert.Contains("only_cross_attention", ex.Message);
        Assert.Contains("unet/config.json", ex.Message);
    }

    /// <summary>diffusers: attn1's keys and values come from the context in the flagged down block and the up block that
    /// mirrors it; other blocks and the mid block keep self-attention.</summary>
    [Fact]
    public void OnlyCrossAttentionGivesAttn1TheContextWidthWhereFlagged()
    {
        var config = Tiny(blocks: 3) with { OnlyCrossAttention = [true, false, false] };
        using var unet = Build(config);
        var shapes = unet.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal(new long[] { 16, 24 }, shapes["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.weight"]);
        Assert.Equal(new long[] { 16, 24 }, shapes["up_blocks.2.attentions.1.transformer_blocks.0.attn1.to_v.weight"]);
        Assert.Equal(new long[] { 16, 16 }, shapes["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.weight"]);
        Assert.Equal(new long[] { 32, 32 }, shapes["mid_block.attentions.0.transformer_blocks.0.attn1.to_k.weight"]);
        long count = unet.parameters().Sum(p => p.numel());
        Assert.InRange(config.MinimumParameters(), 0.5 * count, count);
    }

    /// <summary>Without self-attention every position of a transformer block is computed on its own: changing the input
    /// at one position changes the output there and nowhere else (with self-attention it changes every position).</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OnlyCrossAttentionBlocksMixNoPositions(bool onlyCross)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(3);
        using var block = new BasicTransformerBlock(16, 2, 8, 24, onlyCross);
        block.eval();
        var x = randn(1, 10, 16);
        var ctx = randn(1, 5, 24);
        var y = block.call(x, ctx);
        var x2 = x.clone();
        x2[0, 0] += randn(16);
        var y2 = block.call(x2, ctx);
        Assert.True(TensorAssert.MaxAbsDiff(y2[0, 0], y[0, 0]) > 1e-3, "the changed position's output did not change");
        double elsewhere = TensorAssert.MaxAbsDiff(y2[0, TensorIndex.Slice(1)], y[0, TensorIndex.Slice(1)]);
        if (onlyCross) Assert.True(elsewhere < 1e-6, $"other positions moved by {elsewhere:E2}");
        else Assert.True(elsewhere > 1e-4, "self-attention should carry the change to other positions");
        var y3 = block.call(x, randn(1, 5, 24));
        Assert.True(TensorAssert.MaxAbsDiff(y3, y) > 1e-3, "the context has no effect");
    }
}
