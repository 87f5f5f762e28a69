using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>diffusers' AutoencoderKL config (vae/config.json).</summary>
public sealed record AutoencoderKLConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public string[] DownBlockTypes { get; init; } = ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"];
    public string[] UpBlockTypes { get; init; } = ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"];
    public int[] BlockOutChannels { get; init; } = [128, 256, 512, 512];
    public int LayersPerBlock { get; init; } = 2;
    public int LatentChannels { get; init; } = 4;
    public int NormNumGroups { get; init; } = 32;
    public int SampleSize { get; init; } = 512;
    public double ScalingFactor { get; init; } = 0.18215;
    public string ActFn { get; init; } = "silu";
    public bool MidBlockAddAttention { get; init; } = true;

    /// <summary>How many pixels a latent spans per side: each block but the last halves the grid (diffusers' vae_scale_factor).</summary>
    public int DownsampleFactor => 1 << (BlockOutChannels.Length - 1);

    public static AutoencoderKLConfig StableDiffusion => new();

    public static AutoencoderKLConfig Load(string path) => FromJson(ConfigJson.Load(path));

    public static AutoencoderKLConfig FromJson(ConfigJson c)
    {
        var boc = c.Ints("block_out_channels");
        var down = c.Has("down_block_types") ? c.Strings("down_block_types") : Enumerable.Repeat("DownEncoderBlock2D", boc.Length).ToArray();
        var up = c.Has("up_block_types") ? c.Strings("up_block_types") : Enumerable.Repeat("UpDecoderBlock2D", boc.Length).ToArray();
        if (down.Length != boc.Length || up.Length != boc.Length)
            throw new InvalidDataException($"{c.Source}: down_block_types ({down.Length}), up_block_types ({up.Length}) and block_out_channels ({boc.Length}) must have the same length.");
        if (down.Any(t => t != "DownEncoderBlock2D")) throw new InvalidDataException($"{c.Source}: only DownEncoderBlock2D down blocks are supported, got [{string.Join(", ", down)}].");
        if (up.Any(t => t != "UpDecoderBlock2D")) throw new InvalidDataException($"{c.Source}: only UpDecoderBlock2D up blocks are supported, got [{string.Join(", ", up)}].");
        if (c.Has("use_quant_conv") && !c.Bool("use_quant_conv", true)) throw new InvalidDataException($"{c.Source}: use_quant_conv false is not supported.");
        if (c.Has("use_post_quant_conv") && !c.Bool("use_post_quant_conv", true)) throw new InvalidDataException($"{c.Source}: use_post_quant_conv false is not supported.");
        var config = new AutoencoderKLConfig
        {
            InChannels = c.Int("in_channels", 3),
            OutChannels = c.Int("out_channels", 3),
            DownBlockTypes = down,
            UpBlockTypes = up,
            BlockOutChannels = boc,
            LayersPerBlock = c.Int("layers_per_block", 1),
            LatentChannels = c.Int("latent_channels", 4),
            NormNumGroups = c.Int("norm_num_groups", 32),
            SampleSize = c.Int("sample_size", 32),
            ScalingFactor = c.Double("scaling_factor", 0.18215),
            ActFn = Layers.CheckActivation(c.String("act_fn", "silu"), c.Source),
            MidBlockAddAttention = c.Bool("mid_block_add_attention", true),
        };
        config.Validate(c.Source);
        return config;
    }

    /// <summary>Checks every size and value against what the model can be built from; the message names the file and the keys.</summary>
    public void Validate(string source)
    {
        var v = new ConfigChecks(source);
        v.InRange("block_out_channels", BlockOutChannels.Length, 1, 8); // the VAE scales by 2^(blocks - 1)
        v.InRange("block_out_channels", BlockOutChannels, 1, ConfigChecks.MaxWidth);
        v.InRange("in_channels", InChannels, 1, ConfigChecks.MaxWidth);
        v.InRange("out_channels", OutChannels, 1, ConfigChecks.MaxWidth);
        v.InRange("latent_channels", LatentChannels, 1, ConfigChecks.MaxWidth);
        v.InRange("layers_per_block", LayersPerBlock, 1, ConfigChecks.MaxDepth);
        v.InRange("norm_num_groups", NormNumGroups, 1, ConfigChecks.MaxWidth);
        v.InRange("sample_size", SampleSize, 1, ConfigChecks.MaxWidth);
        v.Finite("scaling_factor", ScalingFactor, 0, minExclusive: true);
        v.ThrowIfAny();
        foreach (var ch in BlockOutChannels)
            v.Require(ch % NormNumGroups == 0, "block_out_channels", $"entry {ch} must be divisible by norm_num_groups {NormNumGroups}");
        v.ThrowIfAny();
    }

    /// <summary>A lower bound on the parameter count (the convolutions and the mid-block attention alone).</summary>
    public double MinimumParameters()
    {
        var c = BlockOutChannels.Select(x => (double)x).ToArray();
        double Resnet(double inCh, double outCh) => 9 * outCh * (inCh + outCh);
        double last = c[^1], latent = LatentChannels;
        double mid = 2 * Resnet(last, last) + (MidBlockAddAttention ? 4 * last * last : 0);
        double total = 9 * InChannels * c[0] + 9 * last * 2 * latent + 9 * latent * last + 9 * c[0] * OutChannels + 2 * mid + 5 * latent * latent;
        for (int i = 0; i < c.Length; i++)
            total += Resnet(i == 0 ? c[0] : c[i - 1], c[i]) + (LayersPerBlock - 1) * Resnet(c[i], c[i]) + (LayersPerBlock + 1) * 9 * c[i] * c[i];
        return total;
    }

    /// <summary>The config.json diffusers writes for this config (what <see cref="FromJson"/> reads back to an equal config).</summary>
    public System.Text.Json.Nodes.JsonObject ToJson() => new()
    {
        ["_class_name"] = "AutoencoderKL",
        ["_diffusers_version"] = "0.25.0",
        ["in_channels"] = InChannels,
        ["out_channels"] = OutChannels,
        ["down_block_types"] = ConfigJson.Array(DownBlockTypes),
        ["up_block_types"] = ConfigJson.Array(UpBlockTypes),
        ["block_out_channels"] = ConfigJson.Array(BlockOutChannels),
        ["layers_per_block"] = LayersPerBlock,
        ["act_fn"] = ActFn,
        ["latent_channels"] = LatentChannels,
        ["norm_num_groups"] = NormNumGroups,
        ["sample_size"] = SampleSize,
        ["scaling_factor"] = ScalingFactor,
        ["mid_block_add_attention"] = MidBlockAddAttention,
    };

    /// <summary>The encoder's and decoder's block settings: no time embedding, GroupNorm eps 1e-6 (hard-coded upstream).</summary>
    internal UNetBlockSettings BlockSettings => new(null, NormNumGroups, 1e-6, ActFn, 0.0, 0, 1, 0, false);
}

/// <summary>diffusers' VAE <c>Encoder</c> (double_z): conv_in, down blocks, mid block, norm, act, conv_out to 2x latent channels.</summary>
public sealed class Encoder : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv_in;
    public readonly ModuleList<DownEncoderBlock2D> down_blocks;
    public readonly UNetMidBlock2D mid_block;
    private readonly nn.Module<Tensor, Tensor> conv_norm_out;
    private readonly nn.Module<Tensor, Tensor> conv_out;
    private readonly string _act;

    public Encoder(AutoencoderKLConfig config) : base(nameof(Encoder))
    {
        var boc = config.BlockOutChannels;
        var s = config.BlockSettings;
        _act = config.ActFn;
        conv_in = new ShapeAwareConv2d(config.InChannels, boc[0], 3, stride: 1, padding: 1);
        down_blocks = new ModuleList<DownEncoderBlock2D>(Enumerable.Range(0, boc.Length).Select(i =>
            new DownEncoderBlock2D(i == 0 ? boc[0] : boc[i - 1], boc[i], config.LayersPerBlock, i < boc.Length - 1, downsamplePadding: 0, s)).ToArray());
        mid_block = new UNetMidBlock2D(boc[^1], s, attentionHeadDim: boc[^1], config.MidBlockAddAttention);
        conv_norm_out = Layers.GroupNorm(config.NormNumGroups, boc[^1], 1e-6);
        conv_out = new ShapeAwareConv2d(boc[^1], 2 * config.LatentChannels, 3, stride: 1, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = conv_in.call(x);
        foreach (var block in down_blocks) h = block.Forward(h, null, null).Hidden;
        h = mid_block.call(h, null);
        return conv_out.call(Layers.Activation(_act, conv_norm_out.call(h)));
    }
}

/// <summary>diffusers' VAE <c>Decoder</c>: conv_in, mid block, up blocks (layers_per_block + 1 resnets each), norm, act, conv_out.</summary>
public sealed class Decoder : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv_in;
    public readonly UNetMidBlock2D mid_block;
    public readonly ModuleList<UpDecoderBlock2D> up_blocks;
    private readonly nn.Module<Tensor, Tensor> conv_norm_out;
    private readonly nn.Module<Tensor, Tensor> conv_out;
    private readonly string _act;

    public Decoder(AutoencoderKLConfig config) : base(nameof(Decoder))
    {
        var boc = config.BlockOutChannels;
        var rev = boc.Reverse().ToArray();
        var s = config.BlockSettings;
        _act = config.ActFn;
        conv_in = new ShapeAwareConv2d(config.LatentChannels, boc[^1], 3, stride: 1, padding: 1);
        mid_block = new UNetMidBlock2D(boc[^1], s, attentionHeadDim: boc[^1], config.MidBlockAddAttention);
        up_blocks = new ModuleList<UpDecoderBlock2D>(Enumerable.Range(0, rev.Length).Select(i =>
            new UpDecoderBlock2D(i == 0 ? rev[0] : rev[i - 1], rev[i], config.LayersPerBlock + 1, i < rev.Length - 1, s)).ToArray());
        conv_norm_out = Layers.GroupNorm(config.NormNumGroups, boc[0], 1e-6);
        conv_out = new ShapeAwareConv2d(boc[0], config.OutChannels, 3, stride: 1, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor z)
    {
        var h = conv_in.call(z);
        h = mid_block.call(h, null);
        foreach (var block in up_blocks) h = block.call(h);
        return conv_out.call(Layers.Activation(_act, conv_norm_out.call(h)));
    }
}

/// <summary>The VAE posterior N(mean, exp(logvar)) from the quant_conv moments (mean channels first); logvar clamped to [-30, 20].</summary>
public sealed class DiagonalGaussianDistribution
{
    public Tensor Mean { get; }
    public Tensor LogVar { get; }
    public Tensor Std { get; }
    public Tensor Var { get; }

    public DiagonalGaussianDistribution(Tensor moments)
    {
        var parts = moments.chunk(2, 1);
        Mean = parts[0];
        LogVar = parts[1].clamp(-30.0, 20.0);
        Std = (0.5 * LogVar).exp();
        Var = LogVar.exp();
    }

    /// <summary>mean + std * eps, eps ~ N(0, 1) drawn from <paramref name="generator"/> (or the global one).</summary>
    public Tensor Sample(Generator? generator = null) =>
        Mean + Std * randn(Mean.shape, dtype: Mean.dtype, device: Mean.device, generator: generator);

    public Tensor Mode() => Mean;

    /// <summary>KL(N(mean, var) || N(0, 1)) summed over C, H, W.</summary>
    public Tensor Kl() => 0.5 * (Mean.pow(2) + Var - 1.0 - LogVar).sum([1, 2, 3]);
}

/// <summary>diffusers' AutoencoderKL: <c>encoder</c> → <c>quant_conv</c> → posterior; latent → <c>post_quant_conv</c> → <c>decoder</c>.
/// No scaling factor is applied here (callers multiply latents by <see cref="AutoencoderKLConfig.ScalingFactor"/>).</summary>
public sealed class AutoencoderKL : nn.Module<Tensor, Tensor>
{
    public AutoencoderKLConfig Config { get; }
    public readonly Encoder encoder;
    public readonly Decoder decoder;
    public readonly nn.Module<Tensor, Tensor> quant_conv;
    public readonly nn.Module<Tensor, Tensor> post_quant_conv;

    public AutoencoderKL(AutoencoderKLConfig config) : base(nameof(AutoencoderKL))
    {
        Config = config;
        encoder = new Encoder(config);
        decoder = new Decoder(config);
        quant_conv = new ShapeAwareConv2d(2 * config.LatentChannels, 2 * config.LatentChannels, 1);
        post_quant_conv = new ShapeAwareConv2d(config.LatentChannels, config.LatentChannels, 1);
        RegisterComponents();
    }

    /// <param name="image">[B, in_channels, H, W] in [-1, 1].</param>
    public DiagonalGaussianDistribution Encode(Tensor image) => new(quant_conv.call(encoder.call(image)));

    /// <summary>Unscaled latent → image in about [-1, 1].</summary>
    public Tensor Decode(Tensor latent) => decoder.call(post_quant_conv.call(latent));

    /// <summary>Reconstruction decode(posterior mode), as diffusers' forward with sample_posterior=False.</summary>
    public override Tensor forward(Tensor image) => Decode(Encode(image).Mode());

    public Tensor Forward(Tensor image, bool samplePosterior, Generator? generator = null)
    {
        var posterior = Encode(image);
        return Decode(samplePosterior ? posterior.Sample(generator) : posterior.Mode());
    }

    /// <summary>Builds the model from a diffusers vae folder: config.json + diffusion_pytorch_model[.variant].safetensors or its shards, see <see cref="ComponentWeights"/>.</summary>
    public static AutoencoderKL FromPretrained(string folder, ScalarType dtype = ScalarType.Float32, Device? device = null, string? variant = null) =>
        PretrainedComponent.Load(folder, dtype, device, variant, AutoencoderKLConfig.Load, c => c.MinimumParameters(), c => new AutoencoderKL(c), (m, w) => StateDictLoader.Load(m, w));

    public void LoadWeights(string safetensorsPath)
    {
        using var file = SafetensorsFile.Open(safetensorsPath);
        StateDictLoader.Load(this, file);
    }
}
