using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using static DiffusionPeft.Diffusion.Loading.LdmKeyMapping;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// An original-layout (CompVis / AUTOMATIC1111) single-file Stable Diffusion checkpoint in safetensors
/// form, presented as three diffusers-named tensor sources: <see cref="UNet"/>, <see cref="Vae"/> and
/// <see cref="TextEncoder"/>. The key mapping is derived from the layout and the configs
/// (<see cref="LdmKeyMapping"/>); the configs start from the SD 1.x / 2.x release configs or from given
/// ones, corrected by what the tensor shapes say (<see cref="InferConfigs"/>).
/// </summary>
public sealed class SingleFileCheckpoint : IDisposable
{
    private readonly SafetensorsFile _file;

    public string Path => _file.Path;
    public ModelFamily Family { get; }
    public SingleFileConfigs Configs { get; }
    public RenamedTensorSource UNet { get; }
    public RenamedTensorSource Vae { get; }
    public RenamedTensorSource TextEncoder { get; }

    /// <summary>File keys that belong to no component (EMA copies, schedule buffers, position_ids, text_projection...).</summary>
    public IReadOnlyList<string> UnusedKeys { get; }

    private SingleFileCheckpoint(SafetensorsFile file, ModelFamily family, SingleFileConfigs configs,
        RenamedTensorSource unet, RenamedTensorSource vae, RenamedTensorSource text)
    {
        _file = file; Family = family; Configs = configs; UNet = unet; Vae = vae; TextEncoder = text;
        var used = new HashSet<string>(new[] { unet, vae, text }.SelectMany(s => s.Mappings.Values.Select(m => m.SourceKey)), StringComparer.Ordinal);
        UnusedKeys = file.Names.Where(k => !used.Contains(k)).Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>The component's weights by diffusers name: "unet", "vae" or "text_encoder".</summary>
    public ITensorSource Component(string name) => name switch
    {
        "unet" => UNet,
        "vae" => Vae,
        "text_encoder" => TextEncoder,
        _ => throw new KeyNotFoundException($"{Path}: a single-file checkpoint has no component '{name}' (unet, vae, text_encoder)."),
    };

    /// <param name="configs">Configs to start from (e.g. <see cref="SingleFileConfigs.FromFolder"/>); what the shapes say wins.</param>
    public static SingleFileCheckpoint Open(string path, SingleFileConfigs? configs = null) =>
        InvalidInput.Guard(() => OpenChecked(path, configs));

    private static SingleFileCheckpoint OpenChecked(string path, SingleFileConfigs? configs)
    {
        if (PickleCheckpointException.IsPickleName(path)) throw new PickleCheckpointException(path);
        var file = SafetensorsFile.Open(path);
        try
        {
            var family = DetectFamily(file.Names);
            if (family == ModelFamily.Unknown)
                throw new InvalidDataException(
                    $"{path}: not a Stable Diffusion 1.x/2.x single-file checkpoint (no model.diffusion_model.* with cond_stage_model.transformer.* or cond_stage_model.model.* keys; SDXL and other layouts are not supported).");
            foreach (var (prefix, what) in new[] { (UNetPrefix, "UNet"), (VaePrefix, "VAE") })
                if (!file.Names.Any(k => k.StartsWith(prefix, StringComparison.Ordinal)))
                    throw new InvalidDataException($"{path}: the checkpoint has no {what} weights ({prefix}*).");
            var inferred = InferConfigs(file, configs);
            var unet = new RenamedTensorSource(file, LdmKeyMapping.UNet(file.Names, inferred.UNet, path), $"{path} (UNet)");
            var vae = new RenamedTensorSource(file, LdmKeyMapping.Vae(file.Names, inferred.Vae, file), $"{path} (VAE)");
            var text = new RenamedTensorSource(file, TextMapping(file, family), $"{path} (text encoder)");
            return new SingleFileCheckpoint(file, family, inferred, unet, vae, text);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public static ModelFamily DetectFamily(IEnumerable<string> keys)
    {
        bool unet = false, clip = false, openClip = false;
        foreach (var k in keys)
        {
            unet |= k.StartsWith(UNetPrefix, StringComparison.Ordinal);
            clip |= k.StartsWith(ClipPrefix, StringComparison.Ordinal);
            openClip |= k.StartsWith(OpenClipPrefix, StringComparison.Ordinal);
        }
        return !unet ? ModelFamily.Unknown : clip && !openClip ? ModelFamily.SD1 : openClip && !clip ? ModelFamily.SD2 : ModelFamily.Unknown;
    }

    private static Dictionary<string, TensorMapping> TextMapping(ITensorSource file, ModelFamily family) =>
        family == ModelFamily.SD2 ? OpenClipText(file.Keys, file) : ClipText(file.Keys, file.Description);

    /// <summary>
    /// UNet / VAE / text-encoder configs for a single-file checkpoint: the SD 1.x (or 2.x) release configs,
    /// overridden by <paramref name="given"/>, overridden by what the tensor shapes determine (channel
    /// widths, block count, layers per block, which blocks have cross-attention, context dim, linear or conv
    /// projection, text-encoder sizes). Head counts and group-norm groups cannot be read from shapes: they
    /// come from <paramref name="given"/> or the defaults (UNet 8 heads for SD 1.x, 64-channel heads for
    /// SD 2.x; text encoder hidden_size / 64 heads).
    /// </summary>
    public static SingleFileConfigs InferConfigs(ITensorSource file, SingleFileConfigs? given = null)
    {
        var family = DetectFamily(file.Keys);
        if (family == ModelFamily.Unknown) family = ModelFamily.SD1;
        var unet = Merge(SdDefaults.UNet(family), given?.UNet);
        var vae = Merge(SdDefaults.Vae(), given?.Vae);
        var text = Merge(SdDefaults.TextEncoder(family), given?.TextEncoder);
        InferUNet(file, unet, family, headsGiven: given?.UNet.Has("attention_head_dim") == true);
        InferVae(file, vae);
        InferTextEncoder(file, family, text, headsGiven: given?.TextEncoder.Has("num_attention_heads") == true);
        // Re-parsed so every value is JSON-backed, as in a config read from disk (ConfigJson's getters convert those).
        return new SingleFileConfigs(
            ConfigJson.Parse(unet.ToJsonString(), $"{file.Description} (inferred UNet config)"),
            ConfigJson.Parse(vae.ToJsonString(), $"{file.Description} (inferred VAE config)"),
            ConfigJson.Parse(text.ToJsonString(), $"{file.Description} (inferred text encoder config)"));
    }

    private static JsonObject Merge(JsonObject defaults, ConfigJson? given)
    {
        if (given is null) return defaults;
        foreach (var (k, v) in given.Root) defaults[k] = v?.DeepClone();
        return defaults;
    }

    private static void InferUNet(ITensorSource f, JsonObject c, ModelFamily family, bool headsGiven)
    {
        string U(string rest) => UNetPrefix + rest;
        long[] Shape(string rest, int rank) => f.Contains(U(rest)) ? Ranked(f, U(rest), rank)
            : throw new InvalidDataException($"{f.Description}: UNet tensor '{U(rest)}' is missing.");
        var keys = f.Keys.Where(k => k.StartsWith(UNetPrefix, StringComparison.Ordinal)).Select(k => k[UNetPrefix.Length..]).ToList();
        if (keys.Count == 0) return;

        var convIn = Shape("input_blocks.0.0.weight", 2);
        c["in_channels"] = convIn[1];
        c["conv_in_kernel"] = convIn.Length == 4 ? convIn[2] : 3;
        var convOut = Shape("out.2.weight", 1);
        c["out_channels"] = convOut[0];
        c["conv_out_kernel"] = convOut.Length == 4 ? convOut[2] : 3;

        int inputBlocks = keys.Where(k => k.StartsWith("input_blocks.", StringComparison.Ordinal)).Select(k => Index(k, 1)).Max() + 1;
        var downsamplers = keys.Where(k => k.StartsWith("input_blocks.", StringComparison.Ordinal) && k.EndsWith(".0.op.weight", StringComparison.Ordinal))
            .Select(k => Index(k, 1)).Where(i => i >= 0).Order().ToArray();
        // Each level has layers_per_block entries plus a downsampler (except the last): the first downsampler sits at index lpb + 1.
        int lpb = downsamplers.Length > 0 ? downsamplers[0] - 1 : inputBlocks - 1;
        int blocks = downsamplers.Length + 1;
        if (lpb < 1 || inputBlocks != (long)blocks * (lpb + 1))
            throw new InvalidDataException($"{f.Description}: {inputBlocks} UNet input_blocks with downsamplers at [{string.Join(", ", downsamplers)}] do not form a UNet of equal levels.");
        c["layers_per_block"] = lpb;

        var widths = new JsonArray();
        var down = new JsonArray();
        var up = new JsonArray();
        for (int b = 0; b < blocks; b++)
        {
            int first = 1 + b * (lpb + 1);
            widths.Add(Shape($"input_blocks.{first}.0.out_layers.3.weight", 1)[0]);
            down.Add(keys.Any(k => k.StartsWith($"input_blocks.{first}.1.", StringComparison.Ordinal)) ? "CrossAttnDownBlock2D" : "DownBlock2D");
            up.Add(keys.Any(k => k.StartsWith($"output_blocks.{b * (lpb + 1)}.1.transformer_blocks.", StringComparison.Ordinal)) ? "CrossAttnUpBlock2D" : "UpBlock2D");
        }
        c["block_out_channels"] = widths;
        c["down_block_types"] = down;
        c["up_block_types"] = up;
        c["mid_block_type"] = keys.Any(k => k.StartsWith("middle_block.1.", StringComparison.Ordinal)) ? "UNetMidBlock2DCrossAttn" : "UNetMidBlock2D";

        if (keys.FirstOrDefault(k => k.EndsWith(".attn2.to_k.weight", StringComparison.Ordinal)) is { } toK)
            c["cross_attention_dim"] = Shape(toK, 2)[1];
        if (keys.FirstOrDefault(k => k.EndsWith(".proj_in.weight", StringComparison.Ordinal)) is { } projIn)
            c["use_linear_projection"] = Shape(projIn, 0).Length == 2;
        if (keys.FirstOrDefault(k => k.Contains(".transformer_blocks.", StringComparison.Ordinal)) is { } tb)
        {
            var attnPrefix = tb[..(tb.IndexOf(".transformer_blocks.", StringComparison.Ordinal) + ".transformer_blocks.".Length)];
            c["transformer_layers_per_block"] = keys.Where(k => k.StartsWith(attnPrefix, StringComparison.Ordinal))
                .Select(k => k[attnPrefix.Length..].Split('.')[0]).Distinct().Count();
        }
        if (!headsGiven && family == ModelFamily.SD2)
        {
            // SD 2.x fixes the head width at 64 channels; diffusers' config stores the per-level head counts.
            c["attention_head_dim"] = new JsonArray(widths.Select(w => (JsonNode)Math.Max(1, (long)w! / 64)).ToArray());
        }
        if (c["attention_head_dim"] is JsonArray heads && heads.Count != blocks)
            throw new InvalidDataException($"{f.Description}: attention_head_dim lists {heads.Count} levels but the UNet has {blocks}.");
    }

    private static void InferVae(ITensorSource f, JsonObject c)
    {
        string V(string rest) => VaePrefix + rest;
        var keys = f.Keys.Where(k => k.StartsWith(VaePrefix + "encoder.down.", StringComparison.Ordinal))
            .Select(k => k[(VaePrefix.Length + "encoder.down.".Length)..]).ToList();
        if (keys.Count == 0) return;
        int blocks = keys.Select(k => Index(k, 0)).Max() + 1;
        int lpb = keys.Where(k => k.StartsWith("0.block.", StringComparison.Ordinal)).Select(k => Index(k, 2)).DefaultIfEmpty(-1).Max() + 1;
        if (blocks < 1 || lpb < 1) throw new InvalidDataException($"{f.Description}: the VAE encoder's down blocks (first_stage_model.encoder.down.*) are not numbered as expected.");
        c["layers_per_block"] = lpb;
        var widths = new JsonArray();
        for (int i = 0; i < blocks; i++)
        {
            var key = V($"encoder.down.{i}.block.{lpb - 1}.conv2.weight");
            if (!f.Contains(key)) throw new InvalidDataException($"{f.Description}: VAE tensor '{key}' is missing.");
            widths.Add(Ranked(f, key, 1)[0]);
        }
        c["block_out_channels"] = widths;
        c["down_block_types"] = new JsonArray(Enumerable.Repeat((JsonNode)"DownEncoderBlock2D", blocks).Select(n => n.DeepClone()).ToArray());
        c["up_block_types"] = new JsonArray(Enumerable.Repeat((JsonNode)"UpDecoderBlock2D", blocks).Select(n => n.DeepClone()).ToArray());
        if (f.Contains(V("encoder.conv_in.weight"))) c["in_channels"] = Ranked(f, V("encoder.conv_in.weight"), 2)[1];
        if (f.Contains(V("decoder.conv_out.weight"))) c["out_channels"] = Ranked(f, V("decoder.conv_out.weight"), 1)[0];
        if (f.Contains(V("post_quant_conv.weight"))) c["latent_channels"] = Ranked(f, V("post_quant_conv.weight"), 2)[1];
    }

    private static void InferTextEncoder(ITensorSource f, ModelFamily family, JsonObject c, bool headsGiven)
    {
        var mapped = TextMapping(f, family);
        if (mapped.Count == 0) return;
        var text = new RenamedTensorSource(f, mapped);
        long[] Shape(string key, int rank) => text.Contains(key) ? Ranked(text, key, rank)
            : throw new InvalidDataException($"{f.Description}: text encoder tensor for '{key}' is missing.");
        var tokens = Shape("text_model.embeddings.token_embedding.weight", 2);
        c["vocab_size"] = tokens[0];
        c["hidden_size"] = tokens[1];
        c["max_position_embeddings"] = Shape("text_model.embeddings.position_embedding.weight", 1)[0];
        c["num_hidden_layers"] = mapped.Keys.Where(k => k.StartsWith("text_model.encoder.layers.", StringComparison.Ordinal))
            .Select(k => k.Split('.')[3]).Distinct().Count();
        c["intermediate_size"] = Shape("text_model.encoder.layers.0.mlp.fc1.weight", 1)[0];
        if (family == ModelFamily.SD2 && f.Contains(OpenClipPrefix + "text_projection"))
            c["projection_dim"] = Ranked(f, OpenClipPrefix + "text_projection", 2)[1];
        if (!headsGiven) c["num_attention_heads"] = Math.Max(1, tokens[1] / 64);
    }

    /// <summary>The shape of <paramref name="key"/>, which must have at least <paramref name="rank"/> dimensions for the config to be read from it.</summary>
    private static long[] Ranked(ITensorSource f, string key, int rank)
    {
        var shape = f.ShapeOf(key);
        return shape.Length >= rank ? shape
            : throw new InvalidDataException($"{f.Description}: tensor '{key}' has shape [{string.Join(", ", shape)}], but a {rank}-dimensional weight was expected.");
    }

    /// <summary>The numeric dot-separated part <paramref name="part"/> of a key, or -1 (the key mapping then reports the key).</summary>
    private static int Index(string key, int part)
    {
        var p = key.Split('.');
        return p.Length > part && int.TryParse(p[part], System.Globalization.NumberStyles.None, null, out var v) ? v : -1;
    }

    public void Dispose() => _file.Dispose();
}
