using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>The three model configs a single-file checkpoint needs, in diffusers / transformers config.json form.</summary>
public sealed record SingleFileConfigs(ConfigJson UNet, ConfigJson Vae, ConfigJson TextEncoder)
{
    public static SingleFileConfigs FromFolder(DiffusersModelFolder folder) =>
        new(folder.Config("unet"), folder.Config("vae"), folder.Config("text_encoder"));
}

/// <summary>Stable Diffusion generation of an original-layout checkpoint, told apart by its text encoder.</summary>
public enum ModelFamily { Unknown, SD1, SD2 }

/// <summary>
/// Configs of the released models (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-2-1) as
/// diffusers and transformers write them; the starting point that a checkpoint's tensor shapes then correct.
/// </summary>
internal static class SdDefaults
{
    public static JsonObject UNet(ModelFamily family) => new()
    {
        ["_class_name"] = "UNet2DConditionModel",
        ["act_fn"] = "silu",
        ["attention_head_dim"] = family == ModelFamily.SD2 ? new JsonArray(5, 10, 20, 20) : 8,
        ["block_out_channels"] = new JsonArray(320, 640, 1280, 1280),
        ["center_input_sample"] = false,
        ["conv_in_kernel"] = 3,
        ["conv_out_kernel"] = 3,
        ["cross_attention_dim"] = family == ModelFamily.SD2 ? 1024 : 768,
        ["down_block_types"] = new JsonArray("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        ["downsample_padding"] = 1,
        ["flip_sin_to_cos"] = true,
        ["freq_shift"] = 0,
        ["in_channels"] = 4,
        ["layers_per_block"] = 2,
        ["mid_block_scale_factor"] = 1,
        ["mid_block_type"] = "UNetMidBlock2DCrossAttn",
        ["norm_eps"] = 1e-5,
        ["norm_num_groups"] = 32,
        ["out_channels"] = 4,
        ["sample_size"] = family == ModelFamily.SD2 ? 96 : 64,
        ["transformer_layers_per_block"] = 1,
        ["up_block_types"] = new JsonArray("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        ["upcast_attention"] = false,
        ["use_linear_projection"] = family == ModelFamily.SD2,
    };

    public static JsonObject Vae() => new()
    {
        ["_class_name"] = "AutoencoderKL",
        ["act_fn"] = "silu",
        ["block_out_channels"] = new JsonArray(128, 256, 512, 512),
        ["down_block_types"] = new JsonArray("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"),
        ["force_upcast"] = true,
        ["in_channels"] = 3,
        ["latent_channels"] = 4,
        ["layers_per_block"] = 2,
        ["norm_num_groups"] = 32,
        ["out_channels"] = 3,
        ["sample_size"] = 512,
        ["scaling_factor"] = 0.18215,
        ["up_block_types"] = new JsonArray("UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
    };

    public static JsonObject TextEncoder(ModelFamily family) => new()
    {
        ["architectures"] = new JsonArray("CLIPTextModel"),
        ["model_type"] = "clip_text_model",
        ["attention_dropout"] = 0.0,
        ["bos_token_id"] = 0,
        ["eos_token_id"] = 2,
        ["pad_token_id"] = 1,
        ["hidden_act"] = family == ModelFamily.SD2 ? "gelu" : "quick_gelu",
        ["hidden_size"] = family == ModelFamily.SD2 ? 1024 : 768,
        ["intermediate_size"] = family == ModelFamily.SD2 ? 4096 : 3072,
        ["layer_norm_eps"] = 1e-5,
        ["max_position_embeddings"] = 77,
        ["num_attention_heads"] = family == ModelFamily.SD2 ? 16 : 12,
        ["num_hidden_layers"] = family == ModelFamily.SD2 ? 23 : 12,
        ["projection_dim"] = family == ModelFamily.SD2 ? 512 : 768,
        ["vocab_size"] = 49408,
    };
}
