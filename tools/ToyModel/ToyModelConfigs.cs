using DiffusionPeft.Core.Text;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.ToyWorld.Vocabulary;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// The toy Stable Diffusion's shapes: SD's classes and layout at toy width for 64×64 images. The VAE downsamples 4×
/// (16×16×4 latents, 12× compression), the text encoder is CLIP at width 128 with a 32-token context over the toy
/// vocabulary, the UNet is SD 1.x's layout (cross-attention down/up blocks, conv projections) at 16×16.
/// </summary>
public static class ToyModelConfigs
{
    /// <summary>Channels double with depth as in SD's VAE (128-256-512-512): <paramref name="width"/> at 16×16, half of it at 32×32, a quarter at 64×64.</summary>
    public static AutoencoderKLConfig Vae(int width = 64) => new()
    {
        BlockOutChannels = [width / 4, width / 2, width], LayersPerBlock = 1, LatentChannels = 4, NormNumGroups = Math.Min(8, width / 4), SampleSize = 64,
        DownBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        UpBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
    };

    public static ClipTextConfig TextEncoder(ClipTokenizer tokenizer, int width = 128, int layers = 4) => new()
    {
        VocabSize = tokenizer.VocabSize, HiddenSize = width, IntermediateSize = 4 * width, NumHiddenLayers = layers, NumAttentionHeads = width / 32,
        MaxPositionEmbeddings = ToyVocabulary.ContextLength, HiddenAct = "quick_gelu",
        BosTokenId = tokenizer.BosId, EosTokenId = tokenizer.EosId, PadTokenId = tokenizer.PadId,
    };

    public static UNet2DConditionConfig Unet(int textWidth, int width = 32) => new()
    {
        SampleSize = 16, InChannels = 4, OutChannels = 4,
        BlockOutChannels = [width, 2 * width, 2 * width], LayersPerBlock = [1, 1, 1],
        DownBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        CrossAttentionDim = [textWidth, textWidth, textWidth], NumAttentionHeads = [Math.Max(1, width / 16), Math.Max(1, width / 16), Math.Max(1, width / 16)],
        TransformerLayersPerBlock = [1, 1, 1], NormNumGroups = Math.Min(16, width / 2),
    };

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
