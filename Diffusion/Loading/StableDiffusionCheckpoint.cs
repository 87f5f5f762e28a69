using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// One Stable Diffusion checkpoint, whatever its layout: per component the config and the weights by
/// diffusers / transformers state-dict names. This is what a pipeline loader needs: build each model from
/// its config, then <c>StateDictLoader.Load(model, checkpoint.UNet)</c> and so on.
/// </summary>
public sealed class StableDiffusionCheckpoint : IDisposable
{
    private readonly List<IDisposable> _owned;

    public CheckpointLayoutInfo Layout { get; }
    /// <summary>The file that identifies the checkpoint (for its hash): a single file itself, a folder's UNet weights (or shard index).</summary>
    public string IdentityFile { get; }
    public ConfigJson UNetConfig { get; }
    public ConfigJson VaeConfig { get; }
    public ConfigJson TextEncoderConfig { get; }
    /// <summary>The folder's scheduler config, or for a single file the SD 1.x/2.x training schedule (PNDM, as diffusers' from_single_file).</summary>
    public ConfigJson SchedulerConfig { get; }
    /// <summary>Folder with vocab.json / merges.txt, or null when the checkpoint carries no tokenizer (single files).</summary>
    public string? TokenizerDir { get; }
    public ITensorSource UNet { get; }
    public ITensorSource Vae { get; }
    public ITensorSource TextEncoder { get; }

    private StableDiffusionCheckpoint(CheckpointLayoutInfo layout, string identityFile, ConfigJson unetConfig, ConfigJson vaeConfig, ConfigJson textConfig,
        ConfigJson schedulerConfig, string? tokenizerDir, ITensorSource unet, ITensorSource vae, ITensorSource text, List<IDisposable> owned)
    {
        Layout = layout; IdentityFile = identityFile; UNetConfig = unetConfig; VaeConfig = vaeConfig; TextEncoderConfig = textConfig; SchedulerConfig = schedulerConfig;
        TokenizerDir = tokenizerDir; UNet = unet; Vae = vae; TextEncoder = text; _owned = owned;
    }

    /// <param name="path">A diffusers pipeline folder or an original-layout single-file .safetensors checkpoint.</param>
    /// <param name="variant">Weight variant of a diffusers folder (e.g. "fp16"); ignored for single files.</param>
    /// <param name="configsFrom">For a single file: a diffusers folder whose configs (head counts, norm groups...), scheduler and tokenizer to use.</param>
    public static StableDiffusionCheckpoint Open(string path, string? variant = null, DiffusersModelFolder? configsFrom = null) =>
        InvalidInput.Guard(() => OpenChecked(path, variant, configsFrom));

    private static StableDiffusionCheckpoint OpenChecked(string path, string? variant, DiffusersModelFolder? configsFrom)
    {
        var layout = CheckpointLayout.Detect(path);
        if (layout.Format == CheckpointFormat.DiffusersFolder) return OpenFolder(layout, DiffusersModelFolder.Open(layout.Path, variant));

        var ckpt = SingleFileCheckpoint.Open(layout.Path, configsFrom is null ? null : SingleFileConfigs.FromFolder(configsFrom));
        var scheduler = configsFrom is not null ? configsFrom.Config("scheduler") : ConfigJson.Parse(DefaultScheduler, $"{layout.Path} (default SD scheduler config)");
        string? tokenizer = configsFrom?.ComponentDir("tokenizer");
        return new StableDiffusionCheckpoint(layout, Path.GetFullPath(layout.Path), ckpt.Configs.UNet, ckpt.Configs.Vae, ckpt.Configs.TextEncoder, scheduler, tokenizer,
            ckpt.UNet, ckpt.Vae, ckpt.TextEncoder, [ckpt]);
    }

    private static StableDiffusionCheckpoint OpenFolder(CheckpointLayoutInfo layout, DiffusersModelFolder folder)
    {
        folder.RequireComponents("unet", "vae", "text_encoder", "tokenizer", "scheduler");
        var owned = new List<IDisposable>();
        try
        {
            var unet = folder.OpenWeights("unet"); owned.Add(unet);
            var vae = folder.OpenWeights("vae"); owned.Add(vae);
            var text = folder.OpenWeights("text_encoder"); owned.Add(text);
            return new StableDiffusionCheckpoint(layout, folder.WeightsPath("unet"), folder.Config("unet"), folder.Config("vae"), folder.Config("text_encoder"),
                folder.Config("scheduler"), folder.ComponentDir("tokenizer"), unet, vae, text, owned);
        }
        catch
        {
            foreach (var d in owned) d.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The schedule every SD 1.x/2.x original config trains with (linear_start 0.00085, linear_end 0.012, 1000
    /// steps), as diffusers' from_single_file builds it. v-prediction models (SD 2.x 768-v) cannot be told from
    /// their weights: pass <c>configsFrom</c> or override prediction_type for them.
    /// </summary>
    public const string DefaultScheduler = """
        {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
         "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
         "clip_sample": false, "prediction_type": "epsilon", "timestep_spacing": "leading", "trained_betas": null}
        """;

    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
    }
}
