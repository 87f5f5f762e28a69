using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Core.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// The models a command runs on when no --model is given, with no files to download:
/// <list type="bullet">
/// <item>the default, <see cref="Keyword"/>: the toy-world model, a small Stable Diffusion (same classes and file layout)
/// trained from scratch by `dpeft toy-model train` on procedural 64 px scenes, shipped as a diffusers folder in bf16
/// (<c>Diffusion/Embedded/toy-world/model</c>, copied to <c>&lt;app&gt;/embedded/toy-world/model</c>). It draws the toy
/// world's scenes ("a red star on the left, blue striped background"), nothing else;</item>
/// <item><see cref="UntrainedKeyword"/>: a tiny UNTRAINED model built in memory from a fixed seed (SD 1.x structure at toy
/// width, a byte-level tokenizer), for tests and smoke runs that need no files at all; its images are structured noise.</item>
/// </list>
/// </summary>
public static class EmbeddedDefaultModel
{
    public const string Name = "dpeft-toy-world";
    public const string UntrainedName = "dpeft-embedded-tiny (untrained)";
    public const long Seed = 20240601;

    /// <summary>The --model value (and config.yaml's model:) that names the toy-world model.</summary>
    public const string Keyword = "embedded";

    /// <summary>The --model value that names the in-memory untrained model.</summary>
    public const string UntrainedKeyword = "embedded-untrained";

    /// <summary>Names another toy-world folder to use instead of the shipped one (a custom install; a newly trained toy model).</summary>
    public const string FolderVariable = "DPEFT_EMBEDDED_MODEL";

    /// <summary>The shipped toy-world diffusers folder (or <see cref="FolderVariable"/>'s).</summary>
    public static string Folder => Environment.GetEnvironmentVariable(FolderVariable) is { Length: > 0 } folder
        ? Path.GetFullPath(folder)
        : Path.Combine(AppContext.BaseDirectory, "embedded", "toy-world", "model");

    /// <summary>Whether a --model value asks for an embedded model: none given, <see cref="Keyword"/> or <see cref="UntrainedKeyword"/>.</summary>
    public static bool IsRequested(string? model) =>
        string.IsNullOrWhiteSpace(model) || IsKeyword(model, Keyword) || IsKeyword(model, UntrainedKeyword);

    private static bool IsKeyword(string model, string keyword) => model.Trim().Equals(keyword, StringComparison.OrdinalIgnoreCase);

    /// <summary>What to tell a user whose command runs on an embedded model, e.g. <c>Note("generating", model)</c>.</summary>
    public static string Note(string purpose, StableDiffusionModel model) => model.Name == UntrainedName
        ? $"note: {purpose} with the embedded '{UntrainedName}'. It is tiny and UNTRAINED: its images are structured noise. Pass --model DIR|FILE for real images."
        : $"note: no --model given: {purpose} with the embedded default '{Name}'. It knows only the toy world's scenes " +
          "(e.g. \"a red star on the left, blue background\"; README: The toy world). Pass --model DIR|FILE for a real Stable Diffusion.";

    /// <summary>The model a keyword names (<see cref="IsRequested"/>).</summary>
    public static StableDiffusionModel Create(string? keyword, Device? device = null, ScalarType dtype = ScalarType.Float32) =>
        keyword is not null && IsKeyword(keyword, UntrainedKeyword) ? CreateUntrained(device, dtype) : Create(device, dtype);

    /// <summary>The toy-world model (the default).</summary>
    public static StableDiffusionModel Create(Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var folder = Folder;
        if (!File.Exists(Path.Combine(folder, "model_index.json")))
            throw new FileNotFoundException($"{folder}: the embedded toy-world model is not installed there (rebuild dpeft, or set {FolderVariable} " +
                                            $"to a folder written by `dpeft toy-model train`; --model {UntrainedKeyword} runs on an untrained in-memory model).", folder);
        return StableDiffusionLoader.LoadEmbedded(folder, Name, dtype, device);
    }

    /// <summary>The untrained in-memory model (<see cref="UntrainedKeyword"/>).</summary>
    public static StableDiffusionModel CreateUntrained(Device? device = null, ScalarType dtype = ScalarType.Float32)
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
            Name = UntrainedName,
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
