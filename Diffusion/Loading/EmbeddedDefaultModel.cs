using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Core.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// A tiny, UNTRAINED Stable Diffusion built in memory from a fixed seed: SD 1.x structure at toy width, a byte-level
/// tokenizer, the SD scheduler. It needs no files or downloads, so every command runs on a fresh machine; its images
/// are structured noise, not pictures.
/// </summary>
public static class EmbeddedDefaultModel
{
    public const string Name = "dpeft-embedded-tiny (untrained)";
    public const long Seed = 20240601;

    /// <summary>The --model value (and config.yaml's model:) that names this model.</summary>
    public const string Keyword = "embedded";

    /// <summary>Whether a --model value asks for the embedded default: none given, or <see cref="Keyword"/>.</summary>
    public static bool IsRequested(string? model) =>
        string.IsNullOrWhiteSpace(model) || model.Trim().Equals(Keyword, StringComparison.OrdinalIgnoreCase);

    /// <summary>What to tell a user whose command runs on the embedded default, e.g. <c>Note("generating")</c>.</summary>
    public static string Note(string purpose) =>
        $"note: no --model given: {purpose} with the embedded default '{Name}'. It is tiny and UNTRAINED: its images are structured noise. Pass --model DIR|FILE for real images.";

    public static StableDiffusionModel Create(Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var tokenizer = ClipTokenizer.ByteLevelOnly();
        var textConfig = new ClipTextConfig
        {
            VocabSize = tokenizer.VocabSize, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 2,
            MaxPositionEmbeddings = tokenizer.MaxLength, HiddenAct = "quick_gelu",
            BosTokenId = tokenizer.BosId, EosTokenId = tokenizer.EosId, PadTokenId = tokenizer.PadId,
        };
        var unetConfig = new UNet2DConditionConfig
        {
            SampleSize = 8,
            BlockOutChannels = [32, 64], LayersPerBlock = [1, 1],
            DownBlockTypes = ["CrossAttnDownBlock2D", "DownBlock2D"], UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D"],
            CrossAttentionDim = [64, 64], NumAttentionHeads = [2, 2], TransformerLayersPerBlock = [1, 1], NormNumGroups = 8,
        };
        var vaeConfig = new AutoencoderKLConfig
        {
            BlockOutChannels = [16, 16, 32, 32], LayersPerBlock = 1, NormNumGroups = 8, SampleSize = 64,
        };

        torch.manual_seed(Seed);
        var model = new StableDiffusionModel
        {
            TextEncoder = new CLIPTextModel(textConfig),
            Unet = new UNet2DConditionModel(unetConfig),
            Vae = new AutoencoderKL(vaeConfig),
            Tokenizer = tokenizer,
            SchedulerConfig = SchedulerConfig.FromJson(IO.ConfigJson.Parse(StableDiffusionSchedulerJson, "embedded scheduler config")),
            Name = Name,
            Device = device ?? CPU,
            DType = dtype,
            IsEmbeddedDefault = true,
        };
        foreach (var m in new nn.Module[] { model.TextEncoder, model.Unet, model.Vae }) ModelPlacement.Place(m, dtype, device);
        return model;
    }

    /// <summary>Stable Diffusion 1.5's scheduler_config.json (PNDM).</summary>
    public const string StableDiffusionSchedulerJson = """
        {
          "_class_name": "PNDMScheduler",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "clip_sample": false,
          "num_train_timesteps": 1000,
          "set_alpha_to_one": false,
          "skip_prk_steps": true,
          "steps_offset": 1,
          "trained_betas": null
        }
        """;
}
