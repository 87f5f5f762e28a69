using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// Maps the original CompVis / AUTOMATIC1111 key layout of a single-file Stable Diffusion checkpoint to
/// diffusers' state-dict names, derived from the layout rules and the model config (block count,
/// layers_per_block, which blocks have attention) as diffusers' <c>convert_ldm_unet_checkpoint</c>,
/// <c>convert_ldm_vae_checkpoint</c>, <c>convert_ldm_clip_checkpoint</c> and <c>convert_open_clip_checkpoint</c>
/// (v0.25.0, <c>pipelines/stable_diffusion/convert_from_ckpt.py</c>) do. Each result maps a diffusers
/// key to the full file key it reads from. A key of the component's prefix that fits no rule is an error
/// naming it: a silent skip would surface later as a vague "missing key".
/// </summary>
public static class LdmKeyMapping
{
    public const string UNetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    public const string ClipPrefix = "cond_stage_model.transformer.";
    public const string OpenClipPrefix = "cond_stage_model.model.";

    private static readonly Dictionary<string, string> ResnetRenames = new(StringComparer.Ordinal)
    {
        ["in_layers.0"] = "norm1", ["in_layers.2"] = "conv1", ["out_layers.0"] = "norm2", ["out_layers.3"] = "conv2",
        ["emb_layers.1"] = "time_emb_proj", ["skip_connection"] = "conv_shortcut",
    };

    private static readonly HashSet<string> TransformerParts = new(StringComparer.Ordinal) { "norm", "proj_in", "proj_out", "transformer_blocks" };

    /// <summary>UNet: <c>model.diffusion_model.*</c> → <c>UNet2DConditionModel</c> keys.</summary>
    public static Dictionary<string, TensorMapping> UNet(IEnumerable<string> fileKeys, ConfigJson unetConfig, string where)
    {
        var down = unetConfig.Strings("down_block_types");
        var up = unetConfig.Strings("up_block_types");
        int blocks = down.Length;
        if (up.Length != blocks) throw new InvalidDataException($"{unetConfig.Source}: {down.Length} down blocks but {up.Length} up blocks.");
        int lpb = unetConfig.Int("layers_per_block", 2);
        if (lpb < 1) throw unetConfig.Invalid("layers_per_block", $"must be at least 1 (got {lpb})");
        string mid = unetConfig.String("mid_block_type", "UNetMidBlock2DCrossAttn");
        bool downAttn(int b) => down[b].Contains("CrossAttn", StringComparison.Ordinal);
        bool upAttn(int b) => up[b].Contains("CrossAttn", StringComparison.Ordinal);

        string? Map(string[] p)
        {
            switch (p[0])
            {
                case "time_embed" when p.Length == 3 && p[1] is "0" or "2":
                    return $"time_embedding.linear_{(p[1] == "0" ? 1 : 2)}.{p[2]}";
                case "label_emb" when p.Length == 4 && p[1] == "0" && p[2] is "0" or "2":
                    return $"class_embedding.linear_{(p[2] == "0" ? 1 : 2)}.{p[3]}";
                case "out" when p.Length == 3 && p[1] is "0" or "2":
                    return $"{(p[1] == "0" ? "conv_norm_out" : "conv_out")}.{p[2]}";
                case "input_blocks" when p.Length >= 4 && Int(p[1]) is int i && Int(p[2]) is int j:
                {
                    if (i == 0) return j == 0 && p.Length == 4 ? $"conv_in.{p[3]}" : null;
                    int b = (i - 1) / (lpb + 1), l = (i - 1) % (lpb + 1);
                    if (b >= blocks) return null;
                    if (l == lpb) // the block's last entry is its downsampler
                        return b < blocks - 1 && j == 0 && p.Length == 5 && p[3] == "op" ? $"down_blocks.{b}.downsamplers.0.conv.{p[4]}" : null;
                    if (j == 0) return Resnet($"down_blocks.{b}.resnets.{l}", p[3..]);
                    if (j == 1 && downAttn(b)) return Transformer($"down_blocks.{b}.attentions.{l}", p[3..]);
                    return null;
                }
                case "middle_block" when p.Length >= 3 && Int(p[1]) is int j:
                    if (mid != "UNetMidBlock2DCrossAttn") return null;
                    return j switch
                    {
                        0 => Resnet("mid_block.resnets.0", p[2..]),
                        1 => Transformer("mid_block.attentions.0", p[2..]),
                        2 => Resnet("mid_block.resnets.1", p[2..]),
                        _ => null,
                    };
                case "output_blocks" when p.Length >= 4 && Int(p[1]) is int i && Int(p[2]) is int j:
                {
                    int b = i / (lpb + 1), l = i % (lpb + 1);
                    if (b >= blocks) return null;
                    if (j == 0) return Resnet($"up_blocks.{b}.resnets.{l}", p[3..]);
                    // The upsampler follows the resnet (and the attention, if the block has one) of the block's last entry.
                    int upsamplerIndex = upAttn(b) ? 2 : 1;
                    if (l == lpb && b < blocks - 1 && j == upsamplerIndex && p.Length == 5 && p[3] == "conv")
                        return $"up_blocks.{b}.upsamplers.0.conv.{p[4]}";
                    if (j == 1 && upAttn(b)) return Transformer($"up_blocks.{b}.attentions.{l}", p[3..]);
                    return null;
                }
                default:
                    return null;
            }
        }
        return Build(fileKeys, UNetPrefix, where, "UNet", Map, (_, _) => null);
    }

    private static int? Int(string s) => int.TryParse(s, System.Globalization.NumberStyles.None, null, out var v) ? v : null;

    private static string? Resnet(string target, string[] rest)
    {
        if (rest.Length == 2 && rest[0] == "skip_connection") return $"{target}.conv_shortcut.{rest[1]}";
        if (rest.Length == 3 && ResnetRenames.TryGetValue($"{rest[0]}.{rest[1]}", out var n)) return $"{target}.{n}.{rest[2]}";
        return null;
    }

    private static string? Transformer(string target, string[] rest) =>
        rest.Length >= 2 && TransformerParts.Contains(rest[0]) ? $"{target}.{string.Join('.', rest)}" : null;

    /// <summary>VAE: <c>first_stage_model.*</c> → <c>AutoencoderKL</c> keys; mid-block attention 1x1 convs become Linear weights.</summary>
    public static Dictionary<string, TensorMapping> Vae(IEnumerable<string> fileKeys, ConfigJson vaeConfig, ITensorSource file)
    {
        int blocks = vaeConfig.Ints("block_out_channels").Length;
        int lpb = vaeConfig.Int("layers_per_block", 2);

        string? Map(string[] p)
        {
            if (p[0] is "quant_conv" or "post_quant_conv") return p.Length == 2 ? string.Join('.', p) : null;
            if (p[0] is not ("encoder" or "decoder") || p.Length < 3) return null;
            string side = p[0];
            bool enc = side == "encoder";
            switch (p[1])
            {
                case "conv_in" or "conv_out" when p.Length == 3: return $"{side}.{p[1]}.{p[2]}";
                case "norm_out" when p.Length == 3: return $"{side}.conv_norm_out.{p[2]}";
                case "down" when enc && p.Length >= 5 && Int(p[2]) is int i && i < blocks:
                    if (p[3] == "block" && Int(p[4]) is int j && j < lpb) return VaeResnet($"encoder.down_blocks.{i}.resnets.{j}", p[5..]);
                    if (p[3] == "downsample" && i < blocks - 1 && p.Length == 6 && p[4] == "conv") return $"encoder.down_blocks.{i}.downsamplers.0.conv.{p[5]}";
                    return null;
                case "up" when !enc && p.Length >= 5 && Int(p[2]) is int i && i < blocks:
                {
                    int b = blocks - 1 - i; // the decoder's "up" list is stored in reverse order
                    if (p[3] == "block" && Int(p[4]) is int r && r < lpb + 1) return VaeResnet($"decoder.up_blocks.{b}.resnets.{r}", p[5..]);
                    if (p[3] == "upsample" && b < blocks - 1 && p.Length == 6 && p[4] == "conv") return $"decoder.up_blocks.{b}.upsamplers.0.conv.{p[5]}";
                    return null;
                }
                case "mid" when p.Length >= 4:
                    return p[2] switch
                    {
                        "block_1" => VaeResnet($"{side}.mid_block.resnets.0", p[3..]),
                        "block_2" => VaeResnet($"{side}.mid_block.resnets.1", p[3..]),
                        "attn_1" when p.Length == 5 => p[3] switch
                        {
                            "norm" => $"{side}.mid_block.attentions.0.group_norm.{p[4]}",
                            "q" => $"{side}.mid_block.attentions.0.to_q.{p[4]}",
                            "k" => $"{side}.mid_block.attentions.0.to_k.{p[4]}",
                            "v" => $"{side}.mid_block.attentions.0.to_v.{p[4]}",
                            "proj_out" => $"{side}.mid_block.attentions.0.to_out.0.{p[4]}",
                            _ => null,
                        },
                        _ => null,
                    };
                default:
                    return null;
            }
        }

        TensorMapping? Transform(string fileKey, string target)
        {
            // diffusers' Attention uses Linear layers where LDM's AttnBlock has 1x1 convolutions.
            bool linear = target.Contains(".mid_block.attentions.0.to_", StringComparison.Ordinal);
            if (!linear) return null;
            var shape = file.ShapeOf(fileKey);
            if (target.EndsWith(".weight", StringComparison.Ordinal) && shape.Length == 4 && shape[2] == 1 && shape[3] == 1)
                return TensorMapping.Reshaped(fileKey, shape[0], shape[1]);
            // v0.25's reverse conversion wrote biases as [C, 1, 1] (diffusers issue #6226); flatten those too.
            if (target.EndsWith(".bias", StringComparison.Ordinal) && shape.Length == 3 && shape[1] == 1 && shape[2] == 1)
                return TensorMapping.Reshaped(fileKey, shape[0]);
            return null;
        }
        return Build(fileKeys, VaePrefix, file.Description, "VAE", Map, Transform);
    }

    private static string? VaeResnet(string target, string[] rest)
    {
        if (rest.Length != 2) return null;
        return rest[0] switch
        {
            "norm1" or "conv1" or "norm2" or "conv2" => $"{target}.{rest[0]}.{rest[1]}",
            "nin_shortcut" => $"{target}.conv_shortcut.{rest[1]}",
            _ => null,
        };
    }

    /// <summary>SD 1.x text encoder: <c>cond_stage_model.transformer.*</c> → <c>CLIPTextModel</c> keys (position_ids dropped).</summary>
    public static Dictionary<string, TensorMapping> ClipText(IEnumerable<string> fileKeys, string where)
    {
        var result = new Dictionary<string, TensorMapping>(StringComparer.Ordinal);
        foreach (var key in fileKeys.Where(k => k.StartsWith(ClipPrefix, StringComparison.Ordinal)))
        {
            var rest = key[ClipPrefix.Length..];
            // transformers < 4.x had no "text_model." level; the module layout below it is the same.
            var target = rest.StartsWith("text_model.", StringComparison.Ordinal) ? rest : "text_model." + rest;
            if (target == "text_model.embeddings.position_ids") continue; // a buffer, not persistent in transformers >= 4.31
            if (!result.TryAdd(target, TensorMapping.Rename(key)))
                throw new InvalidDataException($"{where}: text encoder keys '{result[target].SourceKey}' and '{key}' both map to '{target}'.");
        }
        return result;
    }

    /// <summary>
    /// SD 2.x OpenCLIP text encoder: <c>cond_stage_model.model.*</c> → <c>CLIPTextModel</c> keys. The fused
    /// attention <c>in_proj_weight</c>/<c>in_proj_bias</c> [3C, ...] is split into q/k/v; as in diffusers, the
    /// last residual block is dropped (SD 2.x conditions on the penultimate layer), and <c>text_projection</c>
    /// and <c>logit_scale</c> are not part of the text model.
    /// </summary>
    public static Dictionary<string, TensorMapping> OpenClipText(IEnumerable<string> fileKeys, ITensorSource file)
    {
        var keys = fileKeys.Where(k => k.StartsWith(OpenClipPrefix, StringComparison.Ordinal)).ToList();
        int layers = keys.Select(k => k[OpenClipPrefix.Length..].Split('.'))
            .Where(p => p.Length > 2 && p[0] == "transformer" && p[1] == "resblocks").Select(p => Int(p[2]) ?? -1).DefaultIfEmpty(-1).Max() + 1;
        var result = new Dictionary<string, TensorMapping>(StringComparer.Ordinal);
        var unmapped = new List<string>();
        foreach (var key in keys)
        {
            var p = key[OpenClipPrefix.Length..].Split('.');
            string rest = string.Join('.', p);
            switch (rest)
            {
                case "token_embedding.weight": result["text_model.embeddings.token_embedding.weight"] = TensorMapping.Rename(key); continue;
                case "positional_embedding": result["text_model.embeddings.position_embedding.weight"] = TensorMapping.Rename(key); continue;
                case "ln_final.weight" or "ln_final.bias": result[$"text_model.final_layer_norm.{p[1]}"] = TensorMapping.Rename(key); continue;
                case "text_projection" or "logit_scale": continue;
            }
            if (p.Length >= 5 && p[0] == "transformer" && p[1] == "resblocks" && Int(p[2]) is int layer)
            {
                if (layer == layers - 1) continue;
                string target = $"text_model.encoder.layers.{layer}";
                string tail = string.Join('.', p[3..]);
                switch (tail)
                {
                    case "attn.in_proj_weight" or "attn.in_proj_bias":
                    {
                        var fused = file.ShapeOf(key);
                        if (fused.Length == 0 || fused[0] % 3 != 0)
                            throw new InvalidDataException($"{file.Description}: tensor '{key}' has shape [{string.Join(", ", fused)}]; a fused q/k/v projection needs a first dimension divisible by 3.");
                        long c = fused[0] / 3;
                        string kind = tail.EndsWith("weight", StringComparison.Ordinal) ? "weight" : "bias";
                        result[$"{target}.self_attn.q_proj.{kind}"] = TensorMapping.Slice(key, 0, 0, c);
                        result[$"{target}.self_attn.k_proj.{kind}"] = TensorMapping.Slice(key, 0, c, c);
                        result[$"{target}.self_attn.v_proj.{kind}"] = TensorMapping.Slice(key, 0, 2 * c, c);
                        continue;
                    }
                    case "attn.out_proj.weight" or "attn.out_proj.bias": result[$"{target}.self_attn.out_proj.{p[^1]}"] = TensorMapping.Rename(key); continue;
                    case "ln_1.weight" or "ln_1.bias": result[$"{target}.layer_norm1.{p[^1]}"] = TensorMapping.Rename(key); continue;
                    case "ln_2.weight" or "ln_2.bias": result[$"{target}.layer_norm2.{p[^1]}"] = TensorMapping.Rename(key); continue;
                    case "mlp.c_fc.weight" or "mlp.c_fc.bias": result[$"{target}.mlp.fc1.{p[^1]}"] = TensorMapping.Rename(key); continue;
                    case "mlp.c_proj.weight" or "mlp.c_proj.bias": result[$"{target}.mlp.fc2.{p[^1]}"] = TensorMapping.Rename(key); continue;
                }
            }
            unmapped.Add(key);
        }
        ThrowIfUnmapped(unmapped, file.Description, "OpenCLIP text encoder");
        return result;
    }

    private static Dictionary<string, TensorMapping> Build(IEnumerable<string> fileKeys, string prefix, string where, string component,
        Func<string[], string?> map, Func<string, string, TensorMapping?> transform)
    {
        var result = new Dictionary<string, TensorMapping>(StringComparer.Ordinal);
        var unmapped = new List<string>();
        foreach (var key in fileKeys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var target = map(key[prefix.Length..].Split('.'));
            if (target is null) { unmapped.Add(key); continue; }
            if (!result.TryAdd(target, transform(key, target) ?? TensorMapping.Rename(key)))
                throw new InvalidDataException($"{where}: {component} keys '{result[target].SourceKey}' and '{key}' both map to '{target}'.");
        }
        ThrowIfUnmapped(unmapped, where, component);
        return result;
    }

    private static void ThrowIfUnmapped(List<string> unmapped, string where, string component)
    {
        if (unmapped.Count == 0) return;
        throw new InvalidDataException(
            $"{where}: {unmapped.Count} {component} key(s) fit neither the original Stable Diffusion layout nor the config " +
            $"(wrong layers_per_block / block types?): {string.Join(", ", unmapped.Take(10))}{(unmapped.Count > 10 ? ", ..." : "")}.");
    }
}
