using DiffusionPeft.Core.Text;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.ToyWorld.Vocabulary;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// The toy Stable Diffusion's shapes: SD's classes and layout at toy width for 64×64 images. The VAE downsamples 2×
/// (32×32×4 latents, the shipped model's) or 4× (16×16×4), the text encoder is CLIP at width 128 with a 32-token
/// context over the toy vocabulary, the UNet is SD 1.x's layout (cross-attention down/up blocks, conv projections).
/// </summary>
public static class ToyModelConfigs
{
    /// <summary>The latent grids the toy model supports: the VAE downsamples 64×64 scenes 4× (16×16×4 latents) or 2× (32×32×4).</summary>
    public static bool IsLatentSize(int latentSize) => latentSize is 16 or 32;

    /// <summary>
    /// Channels double with depth as in SD's VAE (128-256-512-512): <paramref name="width"/> at 16×16, half of it at 32×32, a
    /// quarter at 64×64. For 32×32 latents the 16×16 level is left out (one downsampling, 3× compression), and with it the
    /// mid block's self-attention, which over 1,024 positions would cost more than the rest of the VAE.
    /// </summary>
    public static AutoencoderKLConfig Vae(int width = 64, int latentSize = 16)
    {
        RequireLatentSize(latentSize);
        int[] channels = latentSize == 16 ? [width / 4, width / 2, width] : [width / 4, width / 2];
        return new()
        {
            BlockOutChannels = channels, LayersPerBlock = 1, LatentChannels = 4, NormNumGroups = Math.Min(8, width / 4), SampleSize = 64,
            DownBlockTypes = [.. channels.Select(_ => "DownEncoderBlock2D")],
            UpBlockTypes = [.. channels.Select(_ => "UpDecoderBlock2D")],
            MidBlockAddAttention = latentSize == 16,
        };
    }

    public static ClipTextConfig TextEncoder(ClipTokenizer tokenizer, int width = 128, int layers = 4) => new()
    {
        VocabSize = tokenizer.VocabSize, HiddenSize = width, IntermediateSize = 4 * width, NumHiddenLayers = layers, NumAttentionHeads = width / 32,
        MaxPositionEmbeddings = ToyVocabulary.ContextLength, HiddenAct = "quick_gelu",
        BosTokenId = tokenizer.BosId, EosTokenId = tokenizer.EosId, PadTokenId = tokenizer.PadId,
    };

    /// <summary>
    /// SD 1.x's UNet at toy width on <paramref name="latentSize"/>² latents: blocks [w, 2w, 2w] at 16×16, 8×8, 4×4 with
    /// cross-attention at 16×16 and 8×8. On 32×32 latents a convolution-only level [w] goes on top (no attention over
    /// 1,024 positions), so the cross-attention levels stay at 16×16 and 8×8, unless <paramref name="topAttention"/> gives
    /// that level a transformer block too (the caption read where a small object's outline is drawn).
    /// <paramref name="textEmbedding"/> adds the caption, pooled by attention, to the timestep embedding (diffusers'
    /// <c>addition_embed_type: "text"</c>, DeepFloyd IF's), so that it reaches every ResNet block of every level.
    /// </summary>
    public static UNet2DConditionConfig Unet(int textWidth, int width = 32, int latentSize = 16, TopLevelAttention topAttention = TopLevelAttention.None,
        bool textEmbedding = false)
    {
        RequireLatentSize(latentSize);
        if (topAttention != TopLevelAttention.None && latentSize == 16)
            throw new ArgumentException("on 16×16 latents the UNet's top level has cross-attention already; top-level attention is for 32×32");
        int heads = Math.Max(1, width / 16);
        int[] channels = latentSize == 16 ? [width, 2 * width, 2 * width] : [width, width, 2 * width, 2 * width];
        string[] down = latentSize == 16
            ? ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
            : [topAttention != TopLevelAttention.None ? "CrossAttnDownBlock2D" : "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
        string[] up = [.. down.Reverse().Select(t => t.Replace("Down", "Up"))];
        var config = new UNet2DConditionConfig
        {
            SampleSize = latentSize, InChannels = 4, OutChannels = 4,
            BlockOutChannels = channels, LayersPerBlock = [.. channels.Select(_ => 1)],
            DownBlockTypes = down, UpBlockTypes = up,
            CrossAttentionDim = [.. channels.Select(_ => textWidth)], NumAttentionHeads = [.. channels.Select(_ => heads)],
            TransformerLayersPerBlock = [.. channels.Select(_ => 1)], NormNumGroups = Math.Min(16, width / 2),
            OnlyCrossAttention = topAttention == TopLevelAttention.CrossOnly ? [true, false, false, false] : [],
        };
        // The pooling's heads of 32 channels, as the toy text encoder's own (diffusers' default, 64 heads, would leave 2 each).
        return textEmbedding ? config with { AdditionEmbedType = "text", AdditionEmbedTypeNumHeads = Math.Max(1, textWidth / 32) } : config;
    }

    private static void RequireLatentSize(int latentSize)
    {
        if (!IsLatentSize(latentSize)) throw new ArgumentOutOfRangeException(nameof(latentSize), latentSize, "the toy model's latents are 16×16 or 32×32");
    }

    /// <summary>
    /// DDPM's linear betas (1e-4 → 0.02) with v prediction (as SD 2.x), DPM++ 2M as the default sampler. SD 1.x's
    /// scaled-linear schedule ends at ᾱ = 0.0047: on 16×16 latents the mean over 256 pixels still shows the image's
    /// colours at the last timestep, so the model takes layout and colour from the noise, not the caption (Lin et al. 2024,
    /// "Common Diffusion Noise Schedules and Sample Steps are Flawed"); measured here: background colour 25%. Linear betas
    /// end at ᾱ = 4e-5, and v prediction makes the loss at high noise a loss on the image itself, which the caption decides.
    /// </summary>
    public static SchedulerConfig Scheduler() => SchedulerConfig.FromJson(Diffusion.IO.ConfigJson.Parse("""
        {
          "_class_name": "DPMSolverMultistepScheduler",
          "num_train_timesteps": 1000,
          "beta_start": 0.0001,
          "beta_end": 0.02,
          "beta_schedule": "linear",
          "prediction_type": "v_prediction",
          "algorithm_type": "dpmsolver++",
          "solver_order": 2,
          "steps_offset": 1,
          "set_alpha_to_one": false,
          "clip_sample": false,
          "timestep_spacing": "linspace"
        }
        """, "toy scheduler config"));
}
