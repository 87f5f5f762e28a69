using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// The subset of diffusers' UNet2DConditionModel config that Stable Diffusion 1.x/2.x use. Per-block lists are
/// expanded to one entry per down block. <see cref="NumAttentionHeads"/> comes from <c>attention_head_dim</c>,
/// which diffusers 0.25 treats as the head COUNT for these block types.
/// </summary>
public sealed record UNet2DConditionConfig
{
    public int SampleSize { get; init; } = 64;
    public int InChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 4;
    public bool CenterInputSample { get; init; }
    public bool FlipSinToCos { get; init; } = true;
    public double FreqShift { get; init; }
    public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
    public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];
    public bool HasMidBlock { get; init; } = true;
    public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    public int[] LayersPerBlock { get; init; } = [2, 2, 2, 2];
    public int DownsamplePadding { get; init; } = 1;
    public double MidBlockScaleFactor { get; init; } = 1.0;
    public double Dropout { get; init; }
    public string ActFn { get; init; } = "silu";
    public int NormNumGroups { get; init; } = 32;
    public double NormEps { get; init; } = 1e-5;
    public int[] CrossAttentionDim { get; init; } = [768, 768, 768, 768];
    public int[] TransformerLayersPerBlock { get; init; } = [1, 1, 1, 1];
    public int[] NumAttentionHeads { get; init; } = [8, 8, 8, 8];
    public bool UseLinearProjection { get; init; }
    /// <summary>Per down block (up blocks mirror it, the mid block never has it): the transformer's first attention reads
    /// the text context instead of the image (diffusers' <c>only_cross_attention</c>). Empty: false everywhere.</summary>
    public bool[] OnlyCrossAttention { get; init; } = [];
    public bool UpcastAttention { get; init; }
    public int ConvInKernel { get; init; } = 3;
    public int ConvOutKernel { get; init; } = 3;
    public int? TimeEmbeddingDim { get; init; }
    /// <summary>"text": a pooled text embedding is added to the timestep embedding (diffusers' <c>addition_embed_type</c>,
    /// <see cref="TextTimeEmbedding"/>, as DeepFloyd IF's UNet); null: none (Stable Diffusion).</summary>
    public string? AdditionEmbedType { get; init; }
    /// <summary>Heads of the text embedding's attention pooling (diffusers' <c>addition_embed_type_num_heads</c>).</summary>
    public int AdditionEmbedTypeNumHeads { get; init; } = 64;

    /// <summary>Stable Diffusion 1.5's UNet (runwayml/stable-diffusion-v1-5 unet/config.json).</summary>
    public static UNet2DConditionConfig StableDiffusion15 => new();

    public int NumBlocks => BlockOutChannels.Length;
    public bool OnlyCrossAttentionAt(int block) => OnlyCrossAttention.Length > 0 && OnlyCrossAttention[block];
    public int TimeEmbedDim => TimeEmbeddingDim ?? BlockOutChannels[0] * 4;
    public bool HasTextTimeEmbedding => AdditionEmbedType == "text";

    public static UNet2DConditionConfig Load(string path) => FromJson(ConfigJson.Load(path));

    public static UNet2DConditionConfig FromJson(ConfigJson c)
    {
        string src = c.Source;
        var boc = c.Ints("block_out_channels");
        int n = boc.Length;
        var down = c.Strings("down_block_types").Select(StripResPrefix).ToArray();
        var up = c.Strings("up_block_types").Select(StripResPrefix).ToArray();
        if (down.Length != n || up.Length != n)
            throw new InvalidDataException($"{src}: down_block_types ({down.Length}), up_block_types ({up.Length}) and block_out_channels ({n}) must have the same length.");
        foreach (var t in down)
            if (t is not ("CrossAttnDownBlock2D" or "DownBlock2D")) throw new InvalidDataException($"{src}: down block type '{t}' is not supported (CrossAttnDownBlock2D, DownBlock2D).");
        foreach (var t in up)
            if (t is not ("CrossAttnUpBlock2D" or "UpBlock2D")) throw new InvalidDataException($"{src}: up block type '{t}' is not supported (CrossAttnUpBlock2D, UpBlock2D).");

        RequireAbsent(c, "num_attention_heads", "diffusers 0.25 rejects it too; attention_head_dim gives the head count");
        RequireAbsent(c, "class_embed_type"); RequireAbsent(c, "num_class_embeds");
        var addition = c.StringOrNull("addition_embed_type");
        if (addition is not (null or "text"))
            throw new InvalidDataException($"{src}: addition_embed_type '{addition}' is not supported (only \"text\", a pooled text embedding added to the timestep's).");
        RequireAbsent(c, "encoder_hid_dim"); RequireAbsent(c, "encoder_hid_dim_type"); RequireAbsent(c, "time_cond_proj_dim");
        RequireAbsent(c, "timestep_post_act"); RequireAbsent(c, "time_embedding_act_fn"); RequireAbsent(c, "cross_attention_norm");
        RequireAbsent(c, "reverse_transformer_layers_per_block", "asymmetric transformer depths are not supported");
        RequireValue(c, "dual_cross_attention", false);
        RequireValue(c, "resnet_skip_time_act", false);
        RequireString(c, "resnet_time_scale_shift", "default");
        RequireString(c, "time_embedding_type", "positional");
        RequireString(c, "attention_type", "default");
        // mid_block_type: absent = default cross-attention mid block, null = none (as diffusers).
        bool hasMid = !c.Root.ContainsKey("mid_block_type") || c.Has("mid_block_type");
        var midType = c.StringOrNull("mid_block_type");
        if (c.Has("mid_block_type") && midType != "UNetMidBlock2DCrossAttn")
            throw new InvalidDataException($"{src}: mid_block_type '{midType}' is not supported (UNetMidBlock2DCrossAttn).");

        var config = new UNet2DConditionConfig
        {
            SampleSize = c.Int("sample_size", 64),
            InChannels = c.Int("in_channels", 4),
            OutChannels = c.Int("out_channels", 4),
            CenterInputSample = c.Bool("center_input_sample", false),
            FlipSinToCos = c.Bool("flip_sin_to_cos", true),
            FreqShift = c.Double("freq_shift", 0),
            DownBlockTypes = down,
            UpBlockTypes = up,
            HasMidBlock = hasMid,
            BlockOutChannels = boc,
            LayersPerBlock = c.IntOrInts("layers_per_block", n, 2),
            DownsamplePadding = c.Int("downsample_padding", 1),
            MidBlockScaleFactor = c.Double("mid_block_scale_factor", 1.0),
            Dropout = c.Double("dropout", 0.0),
            ActFn = Layers.CheckActivation(c.String("act_fn", "silu"), src),
            NormNumGroups = c.Has("norm_num_groups") ? c.Int("norm_num_groups") : throw new InvalidDataException($"{src}: norm_num_groups null (no output norm) is not supported."),
            NormEps = c.Double("norm_eps", 1e-5),
            CrossAttentionDim = c.IntOrInts("cross_attention_dim", n, 1280),
            TransformerLayersPerBlock = c.IntOrInts("transformer_layers_per_block", n, 1),
            NumAttentionHeads = c.IntOrInts("attention_head_dim", n, 8),
            UseLinearProjection = c.Bool("use_linear_projection", false),
            OnlyCrossAttention = c.BoolOrBools("only_cross_attention", n, false),
            UpcastAttention = c.Bool("upcast_attention", false),
            ConvInKernel = c.Int("conv_in_kernel", 3),
            ConvOutKernel = c.Int("conv_out_kernel", 3),
            TimeEmbeddingDim = c.Has("time_embedding_dim") ? c.Int("time_embedding_dim") : null,
            AdditionEmbedType = addition,
            AdditionEmbedTypeNumHeads = c.Int("addition_embed_type_num_heads", 64),
        };
        config.Validate(src);
        return config;
    }

    /// <summary>Checks every size and value against what the model can be built from; the message names the file and the keys.</summary>
    public void Validate(string source)
    {
        var v = new ConfigChecks(source);
        int n = BlockOutChannels.Length;
        v.InRange("block_out_channels", n, 1, 16);
        v.InRange("block_out_channels", BlockOutChannels, 1, ConfigChecks.MaxWidth);
        v.Require(DownBlockTypes.Length == n && UpBlockTypes.Length == n, "down_block_types", "and up_block_types need one entry per block_out_channels entry");
        foreach (var (key, values) in new[] { ("layers_per_block", LayersPerBlock), ("cross_attention_dim", CrossAttentionDim),
                     ("transformer_layers_per_block", TransformerLayersPerBlock), ("attention_head_dim", NumAttentionHeads) })
            v.Require(values.Length == n, key, $"needs {n} entries (one per block), got {values.Length}");
        v.Require(OnlyCrossAttention.Length is 0 || OnlyCrossAttention.Length == n, "only_cross_attention", $"needs {n} entries (one per block), got {OnlyCrossAttention.Length}");
        v.Require(AdditionEmbedType is null or "text", "addition_embed_type", $"must be \"text\" or null (got \"{AdditionEmbedType}\")");
        v.ThrowIfAny();
        if (HasTextTimeEmbedding)
        {
            // diffusers builds the text embedding from cross_attention_dim as given, before it expands a number per block:
            // it takes one number only (ToJson writes one; an equal-valued list, as this port wrote before, is read here).
            v.Require(CrossAttentionDim.Distinct().Count() == 1, "cross_attention_dim", "must be one width for every block with addition_embed_type \"text\"");
            v.InRange("addition_embed_type_num_heads", AdditionEmbedTypeNumHeads, 1, ConfigChecks.MaxWidth);
            v.ThrowIfAny();
            v.Require(CrossAttentionDim[0] % AdditionEmbedTypeNumHeads == 0, "addition_embed_type_num_heads",
                $"({AdditionEmbedTypeNumHeads}) must divide cross_attention_dim ({CrossAttentionDim[0]})");
            v.ThrowIfAny();
        }
        v.InRange("sample_size", SampleSize, 1, 1024); // latent pixels: the default image size is 8x this
        v.InRange("in_channels", InChannels, 1, ConfigChecks.MaxWidth);
        v.InRange("out_channels", OutChannels, 1, ConfigChecks.MaxWidth);
        v.InRange("layers_per_block", LayersPerBlock, 1, ConfigChecks.MaxDepth);
        v.InRange("transformer_layers_per_block", TransformerLayersPerBlock, 1, ConfigChecks.MaxDepth);
        v.InRange("cross_attention_dim", CrossAttentionDim, 1, ConfigChecks.MaxWidth);
        v.InRange("attention_head_dim", NumAttentionHeads, 1, ConfigChecks.MaxWidth);
        v.InRange("downsample_padding", DownsamplePadding, 0, 16);
        v.InRange("norm_num_groups", NormNumGroups, 1, ConfigChecks.MaxWidth);
        v.InRange("time_embedding_dim", TimeEmbedDim, 1, 4 * ConfigChecks.MaxWidth);
        foreach (var (key, k) in new[] { ("conv_in_kernel", ConvInKernel), ("conv_out_kernel", ConvOutKernel) })
            v.Require(k is >= 1 and <= 15 && k % 2 == 1, key, $"must be an odd kernel size in 1..15 (got {k})");
        v.Finite("norm_eps", NormEps, 0, minExclusive: true);
        v.Finite("dropout", Dropout, 0, 1);
        v.Finite("freq_shift", FreqShift);
        v.Finite("mid_block_scale_factor", MidBlockScaleFactor);
        v.ThrowIfAny();
        for (int i = 0; i < n; i++)
        {
            int ch = BlockOutChannels[i];
            v.Require(ch % NormNumGroups == 0, "block_out_channels", $"entry {i} ({ch}) must be divisible by norm_num_groups {NormNumGroups}");
            bool attention = DownBlockTypes[i] == "CrossAttnDownBlock2D" || UpBlockTypes[n - 1 - i] == "CrossAttnUpBlock2D" || (HasMidBlock && i == n - 1);
            if (attention)
                v.Require(ch % NumAttentionHeads[i] == 0, "attention_head_dim", $"entry {i} ({NumAttentionHeads[i]} heads) must divide the block's {ch} channels");
        }
        v.ThrowIfAny();
    }

    /// <summary>A lower bound on the parameter count (the 3x3 convolutions, attention and feed-forward matrices alone).</summary>
    public double MinimumParameters()
    {
        var c = BlockOutChannels.Select(x => (double)x).ToArray();
        int n = c.Length;
        double temb = TimeEmbedDim;
        double Resnet(double inCh, double outCh) => 9 * outCh * (inCh + outCh) + temb * outCh;
        // attn1 (q, k, v, out), attn2 (q, out; k, v from the context), GEGLU (c → 8c, 4c → c); attn1's k and v read the
        // context too under only_cross_attention.
        double Transformer(int i, bool mid = false) => TransformerLayersPerBlock[i] * (!mid && OnlyCrossAttentionAt(i)
            ? 16 * c[i] * c[i] + 4 * c[i] * CrossAttentionDim[i]
            : 18 * c[i] * c[i] + 2 * c[i] * CrossAttentionDim[i]);
        double total = c[0] * InChannels * ConvInKernel * ConvInKernel + OutChannels * c[0] * ConvOutKernel * ConvOutKernel + c[0] * temb + temb * temb;
        for (int i = 0; i < n; i++)
        {
            total += Resnet(i == 0 ? c[0] : c[i - 1], c[i]) + (LayersPerBlock[i] - 1) * Resnet(c[i], c[i]);
            if (DownBlockTypes[i] == "CrossAttnDownBlock2D") total += LayersPerBlock[i] * Transformer(i);
            int m = n - 1 - i;
            total += (LayersPerBlock[m] + 1) * (9 * c[m] * c[m] + temb * c[m]);
            if (UpBlockTypes[i] == "CrossAttnUpBlock2D") total += (LayersPerBlock[m] + 1) * Transformer(m);
        }
        if (HasMidBlock) total += 2 * Resnet(c[^1], c[^1]) + Transformer(n - 1, mid: true);
        if (HasTextTimeEmbedding) total += 3.0 * CrossAttentionDim[0] * CrossAttentionDim[0] + CrossAttentionDim[0] * temb;   // pooling's k, q, v; proj
        return total;
    }

    /// <summary>The config.json diffusers writes for this config (what <see cref="FromJson"/> reads back to an equal config).</summary>
    public JsonObject ToJson() => new()
    {
        ["_class_name"] = "UNet2DConditionModel",
        ["_diffusers_version"] = "0.25.0",
        ["sample_size"] = SampleSize,
        ["in_channels"] = InChannels,
        ["out_channels"] = OutChannels,
        ["center_input_sample"] = CenterInputSample,
        ["flip_sin_to_cos"] = FlipSinToCos,
        ["freq_shift"] = FreqShift,
        ["down_block_types"] = ConfigJson.Array(DownBlockTypes),
        ["mid_block_type"] = HasMidBlock ? "UNetMidBlock2DCrossAttn" : null,
        ["up_block_types"] = ConfigJson.Array(UpBlockTypes),
        ["only_cross_attention"] = OnlyCrossAttention.Any(b => b) ? ConfigJson.Array(OnlyCrossAttention) : false,
        ["block_out_channels"] = ConfigJson.Array(BlockOutChannels),
        ["layers_per_block"] = ConfigJson.Array(LayersPerBlock),
        ["downsample_padding"] = DownsamplePadding,
        ["mid_block_scale_factor"] = MidBlockScaleFactor,
        ["dropout"] = Dropout,
        ["act_fn"] = ActFn,
        ["norm_num_groups"] = NormNumGroups,
        ["norm_eps"] = NormEps,
        ["cross_attention_dim"] = HasTextTimeEmbedding ? CrossAttentionDim[0] : ConfigJson.Array(CrossAttentionDim),
        ["transformer_layers_per_block"] = ConfigJson.Array(TransformerLayersPerBlock),
        ["attention_head_dim"] = ConfigJson.Array(NumAttentionHeads),
        ["use_linear_projection"] = UseLinearProjection,
        ["upcast_attention"] = UpcastAttention,
        ["conv_in_kernel"] = ConvInKernel,
        ["conv_out_kernel"] = ConvOutKernel,
        ["time_embedding_dim"] = TimeEmbeddingDim,
        ["addition_embed_type"] = AdditionEmbedType,
        ["addition_embed_type_num_heads"] = AdditionEmbedTypeNumHeads,
        ["dual_cross_attention"] = false,
        ["resnet_time_scale_shift"] = "default",
        ["time_embedding_type"] = "positional",
    };

    private static string StripResPrefix(string t) => t.StartsWith("UNetRes", StringComparison.Ordinal) ? t[7..] : t;

    private static void RequireAbsent(ConfigJson c, string key, string? why = null)
    {
        if (c.Has(key)) throw new InvalidDataException($"{c.Source}: '{key}' = {c.Get(key).ToJsonString()} is not supported{(why is null ? "" : $" ({why})")}.");
    }

    private static void RequireValue(ConfigJson c, string key, bool expected)
    {
        if (c.Has(key) && c.Bool(key, expected) != expected) throw new InvalidDataException($"{c.Source}: '{key}' = {!expected} is not supported.");
    }

    private static void RequireString(ConfigJson c, string key, string expected)
    {
        if (c.Has(key) && c.String(key, expected) != expected) throw new InvalidDataException($"{c.Source}: '{key}' = '{c.String(key, expected)}' is not supported (only '{expected}').");
    }
}

/// <summary>
/// diffusers' UNet2DConditionModel (0.25) for Stable Diffusion: predicts the noise (or v) for a noisy latent, a
/// timestep and text embeddings. Module names equal the diffusers state-dict keys.
/// </summary>
public sealed class UNet2DConditionModel : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    public UNet2DConditionConfig Config { get; }

    private readonly Timesteps time_proj;
    private readonly TimestepEmbedding time_embedding;
    private readonly TextTimeEmbedding? add_embedding;
    private readonly nn.Module<Tensor, Tensor> conv_in;
    public readonly ModuleList<UNetDownBlock> down_blocks;
    public readonly UNetMidBlock2DCrossAttn? mid_block;
    public readonly ModuleList<UNetUpBlock> up_blocks;
    private readonly nn.Module<Tensor, Tensor> conv_norm_out;
    private readonly nn.Module<Tensor, Tensor> conv_out;
    private readonly int _numUpsamplers;

    public UNet2DConditionModel(UNet2DConditionConfig config) : base(nameof(UNet2DConditionModel))
    {
        Config = config;
        var boc = config.BlockOutChannels;
        int n = boc.Length;
        int temb = config.TimeEmbedDim;
        UNetBlockSettings Settings(int i, bool mid = false) => new(temb, config.NormNumGroups, config.NormEps, config.ActFn, config.Dropout,
            config.CrossAttentionDim[i], config.NumAttentionHeads[i], config.TransformerLayersPerBlock[i], config.UseLinearProjection,
            !mid && config.OnlyCrossAttentionAt(i));

        conv_in = new ShapeAwareConv2d(config.InChannels, boc[0], config.ConvInKernel, stride: 1, padding: (config.ConvInKernel - 1) / 2);
        time_proj = new Timesteps(boc[0], config.FlipSinToCos, config.FreqShift);
        time_embedding = new TimestepEmbedding(boc[0], temb, config.ActFn);

        var downs = new List<UNetDownBlock>();
        for (int i = 0; i < n; i++)
        {
            int inCh = i == 0 ? boc[0] : boc[i - 1];
            bool final = i == n - 1;
            downs.Add(config.DownBlockTypes[i] == "CrossAttnDownBlock2D"
                ? new CrossAttnDownBlock2D(inCh, boc[i], config.LayersPerBlock[i], !final, config.DownsamplePadding, Settings(i))
                : new DownBlock2D(inCh, boc[i], config.LayersPerBlock[i], !final, config.DownsamplePadding, Settings(i)));
        }
        down_blocks = new ModuleList<UNetDownBlock>(downs.ToArray());

        if (config.HasMidBlock) mid_block = new UNetMidBlock2DCrossAttn(boc[n - 1], Settings(n - 1, mid: true), config.MidBlockScaleFactor);

        // Up block i mirrors down block n-1-i (heads, context width, depths reversed), as in diffusers.
        var ups = new List<UNetUpBlock>();
        int outCh = boc[n - 1];
        for (int i = 0; i < n; i++)
        {
            int mirror = n - 1 - i;
            bool final = i == n - 1;
            int prevOut = outCh;
            outCh = boc[mirror];
            int inCh = boc[Math.Max(mirror - 1, 0)];
            if (!final) _numUpsamplers++;
            int layers = config.LayersPerBlock[mirror] + 1;
            ups.Add(config.UpBlockTypes[i] == "CrossAttnUpBlock2D"
                ? new CrossAttnUpBlock2D(inCh, outCh, prevOut, layers, !final, Settings(mirror))
                : new UpBlock2D(inCh, outCh, prevOut, layers, !final, Settings(mirror)));
        }
        up_blocks = new ModuleList<UNetUpBlock>(ups.ToArray());

        conv_norm_out = Layers.GroupNorm(config.NormNumGroups, boc[0], config.NormEps);
        conv_out = new ShapeAwareConv2d(boc[0], config.OutChannels, config.ConvOutKernel, stride: 1, padding: (config.ConvOutKernel - 1) / 2);
        // Built last: under one seed, a UNet with the text embedding draws every other initial weight as one without it does.
        if (config.HasTextTimeEmbedding) add_embedding = new TextTimeEmbedding(config.CrossAttentionDim[0], temb, config.AdditionEmbedTypeNumHeads);
        RegisterComponents();
    }

    /// <summary>
    /// Activation checkpointing of every transformer block (diffusers' enable_gradient_checkpointing, for the attention
    /// blocks, whose activations dominate): less memory in training for one extra block forward each.
    /// </summary>
    public bool GradientCheckpointing
    {
        get => modules().OfType<Transformer2DModel>().Any(t => t.GradientCheckpointing);
        set { foreach (var t in modules().OfType<Transformer2DModel>()) t.GradientCheckpointing = value; }
    }

    public override Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates) =>
        Forward(sample, timestep, encoderHiddenStates);

    /// <param name="sample">Noisy latents [B, C, H, W] (H, W need not be multiples of 2^levels).</param>
    /// <param name="timestep">A scalar or one (integer or fractional) timestep per batch item.</param>
    /// <param name="encoderHiddenStates">Text embeddings [B, S, cross_attention_dim].</param>
    /// <param name="debug">Receives intermediates under the names the golden data uses (time_proj, conv_in, down_blocks.i, ...).</param>
    public Tensor Forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Action<string, Tensor>? debug = null)
    {
        if (sample.ndim != 4 || sample.shape[1] != Config.InChannels)
            throw new ArgumentException($"UNet2DConditionModel: sample should be [B, {Config.InChannels}, H, W], got [{string.Join(", ", sample.shape)}].");
        long batch = sample.shape[0];

        // Sizes not divisible by 2^levels: every upsampler is told the size of the matching skip state.
        long factor = 1L << _numUpsamplers;
        bool forwardUpsampleSize = sample.shape[2] % factor != 0 || sample.shape[3] % factor != 0;

        if (Config.CenterInputSample) sample = 2 * sample - 1.0;

        var timesteps = timestep.ndim == 0 ? timestep.unsqueeze(0) : timestep;
        if (timesteps.ndim != 1) throw new ArgumentException($"timestep should be a scalar or 1-D, got shape [{string.Join(", ", timestep.shape)}].");
        timesteps = timesteps.to(sample.device).expand(batch);
        var tEmb = time_proj.call(timesteps).to_type(sample.dtype);
        debug?.Invoke("time_proj", tEmb);
        var emb = time_embedding.call(tEmb);
        debug?.Invoke("time_embedding", emb);
        if (add_embedding is not null)
        {
            var aug = add_embedding.call(encoderHiddenStates.to_type(emb.dtype));
            debug?.Invoke("add_embedding", aug);
            emb = emb + aug;
        }

        var h = conv_in.call(sample);
        debug?.Invoke("conv_in", h);

        var skips = new List<Tensor> { h };
        for (int i = 0; i < down_blocks.Count; i++)
        {
            (h, var res) = down_blocks[i].Forward(h, emb, encoderHiddenStates);
            skips.AddRange(res);
            debug?.Invoke($"down_blocks.{i}", h);
        }

        if (mid_block is not null)
        {
            h = mid_block.call(h, emb, encoderHiddenStates);
            debug?.Invoke("mid_block", h);
        }

        for (int i = 0; i < up_blocks.Count; i++)
        {
            var block = up_blocks[i];
            int take = block.NumResnets;
            var res = skips.GetRange(skips.Count - take, take);
            skips.RemoveRange(skips.Count - take, take);
            bool final = i == up_blocks.Count - 1;
            long[]? upsampleSize = !final && forwardUpsampleSize ? [skips[^1].shape[2], skips[^1].shape[3]] : null;
            h = block.Forward(h, res, emb, encoderHiddenStates, upsampleSize);
            debug?.Invoke($"up_blocks.{i}", h);
        }

        h = conv_norm_out.call(h);
        debug?.Invoke("conv_norm_out", h);
        return conv_out.call(Layers.Activation(Config.ActFn, h));
    }

    /// <summary>Builds the model from a diffusers unet folder: config.json + diffusion_pytorch_model[.variant].safetensors or its shards, see <see cref="ComponentWeights"/>.</summary>
    public static UNet2DConditionModel FromPretrained(string folder, ScalarType dtype = ScalarType.Float32, Device? device = null, string? variant = null) =>
        PretrainedComponent.Load(folder, dtype, device, variant, UNet2DConditionConfig.Load, c => c.MinimumParameters(), c => new UNet2DConditionModel(c), (m, w) => StateDictLoader.Load(m, w));

    public void LoadWeights(string safetensorsPath)
    {
        using var file = SafetensorsFile.Open(safetensorsPath);
        StateDictLoader.Load(this, file);
    }
}
