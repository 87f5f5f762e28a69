using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Core.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>Loads a whole Stable Diffusion checkpoint in one call: a diffusers folder or a single .safetensors file.</summary>
public static class StableDiffusionLoader
{
    /// <param name="path">A diffusers pipeline folder (model_index.json) or an A1111/CompVis single-file .safetensors.</param>
    /// <param name="variant">A diffusers weight variant such as "fp16" (components without one use the plain files).</param>
    /// <param name="configsFrom">For a single file: a diffusers folder whose configs, scheduler and tokenizer to use.
    /// Single files carry no tokenizer, so one is needed unless <paramref name="tokenizerDir"/> is given.</param>
    /// <summary>
    /// The one way a command chooses its base model: <paramref name="path"/>, or the embedded default when it is null,
    /// empty or <see cref="EmbeddedDefaultModel.Keyword"/> (callers say so with <see cref="EmbeddedDefaultModel.Note"/>).
    /// </summary>
    public static StableDiffusionModel LoadOrEmbedded(string? path, ScalarType dtype = ScalarType.Float32, Device? device = null,
        string? variant = null, string? configsFrom = null, string? tokenizerDir = null) =>
        EmbeddedDefaultModel.IsRequested(path) ? EmbeddedDefaultModel.Create(path, device, dtype) : Load(path!, dtype, device, variant, configsFrom, tokenizerDir);

    public static StableDiffusionModel Load(string path, ScalarType dtype = ScalarType.Float32, Device? device = null,
        string? variant = null, string? configsFrom = null, string? tokenizerDir = null) =>
        InvalidInput.Guard(() => LoadChecked(path, dtype, device, variant, configsFrom, tokenizerDir));

    /// <summary>A shipped embedded folder (<see cref="EmbeddedDefaultModel"/>): loaded as any folder, named <paramref name="name"/> and marked embedded.</summary>
    internal static StableDiffusionModel LoadEmbedded(string folder, string name, ScalarType dtype, Device? device) =>
        InvalidInput.Guard(() => LoadChecked(folder, dtype, device, null, null, null, embeddedName: name));

    private static StableDiffusionModel LoadChecked(string path, ScalarType dtype, Device? device, string? variant, string? configsFrom, string? tokenizerDir,
                                                    string? embeddedName = null)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new FileNotFoundException($"{path}: no such model folder or checkpoint file.", path);
        using var ckpt = StableDiffusionCheckpoint.Open(path, variant, configsFrom is null ? null : DiffusersModelFolder.Open(configsFrom));
        var tokenizerFolder = tokenizerDir ?? ckpt.TokenizerDir
            ?? throw new ArgumentException($"{path}: a single-file checkpoint carries no tokenizer. Pass the tokenizer/ folder of a matching " +
                                           "diffusers model (--configs-from DIR or --tokenizer DIR; SD 1.x uses openai/clip-vit-large-patch14's vocab.json and merges.txt).");

        // Every config, the tokenizer and the scheduler are read and checked before any model is built, and each model's
        // size against its weights, so bad input is refused without allocating anything in proportion to what it claims.
        var unetConfig = UNet2DConditionConfig.FromJson(ckpt.UNetConfig);
        var vaeConfig = AutoencoderKLConfig.FromJson(ckpt.VaeConfig);
        var textConfig = ClipTextConfig.From(ckpt.TextEncoderConfig);
        var schedulerConfig = SchedulerConfig.FromJson(ckpt.SchedulerConfig);
        var tokenizer = ClipTokenizer.FromFolder(tokenizerFolder);
        // A folder's own sampling defaults; a single file has none, unless the folder its configs come from does.
        var generation = Directory.Exists(path) ? GenerationConfig.Read(path) : configsFrom is not null ? GenerationConfig.Read(configsFrom) : null;
        if (tokenizer.MaxId >= textConfig.VocabSize)
            throw new InvalidDataException($"{tokenizerFolder}: the tokenizer has ids up to {tokenizer.MaxId}, but the text encoder ({ckpt.TextEncoderConfig.Source}) " +
                                           $"has only {textConfig.VocabSize} embeddings (vocab_size).");
        if (tokenizer.MaxLength > textConfig.MaxPositionEmbeddings)
            throw new InvalidDataException($"{tokenizerFolder}: the tokenizer makes sequences of {tokenizer.MaxLength} tokens (model_max_length), but the text encoder " +
                                           $"({ckpt.TextEncoderConfig.Source}) has only {textConfig.MaxPositionEmbeddings} positions (max_position_embeddings).");
        ModelSize.EnsureWeightsCanHold(unetConfig.MinimumParameters(), ckpt.UNet, ckpt.UNetConfig.Source);
        ModelSize.EnsureWeightsCanHold(vaeConfig.MinimumParameters(), ckpt.Vae, ckpt.VaeConfig.Source);
        ModelSize.EnsureWeightsCanHold(textConfig.MinimumParameters(), ckpt.TextEncoder, ckpt.TextEncoderConfig.Source);

        var built = new List<nn.Module>();
        try
        {
            var unet = Build(new UNet2DConditionModel(unetConfig), built, ckpt.UNet, dtype, device);
            var vae = Build(new AutoencoderKL(vaeConfig), built, ckpt.Vae, dtype, device);
            var text = new CLIPTextModel(textConfig);
            built.Add(text);
            text.LoadWeights(ckpt.TextEncoder);
            ModelPlacement.Place(text, dtype, device);

            bool single = ckpt.Layout.Format == CheckpointFormat.SingleFile;
            return new StableDiffusionModel
            {
                Unet = unet,
                Vae = vae,
                TextEncoder = text,
                Tokenizer = tokenizer,
                SchedulerConfig = schedulerConfig,
                Name = embeddedName ?? (single ? Path.GetFileNameWithoutExtension(path) : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)))),
                IdentityFile = ckpt.IdentityFile,
                Device = device ?? CPU,
                DType = dtype,
                IsEmbeddedDefault = embeddedName is not null,
                Generation = generation,
            };
        }
        catch
        {
            foreach (var m in built) m.Dispose();
            throw;
        }
    }

    private static T Build<T>(T module, List<nn.Module> built, ITensorSource weights, ScalarType dtype, Device? device) where T : nn.Module
    {
        built.Add(module);
        StateDictLoader.Load(module, weights);
        return ModelPlacement.Place(module, dtype, device);
    }
}
