using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>Loads a whole Stable Diffusion checkpoint in one call: a diffusers folder or a single .safetensors file.</summary>
public static class StableDiffusionLoader
{
    /// <param name="variant">A diffusers weight variant such as "fp16" (falls back to the plain files where a component has none).</param>
    public static StableDiffusionModel Load(string path, ScalarType dtype = ScalarType.Float32, Device? device = null, string? variant = null)
    {
        if (Directory.Exists(path)) return LoadFolder(path, dtype, device, variant);
        if (File.Exists(path)) throw new NotSupportedException($"{path}: single-file checkpoints are not supported yet.");
        throw new FileNotFoundException($"{path}: no such model folder or checkpoint file.", path);
    }

    private static StableDiffusionModel LoadFolder(string folder, ScalarType dtype, Device? device, string? variant)
    {
        if (!File.Exists(Path.Combine(folder, "model_index.json")))
            throw new InvalidDataException($"{folder}: not a diffusers model folder (no model_index.json).");
        string Sub(string name) => Directory.Exists(Path.Combine(folder, name)) ? Path.Combine(folder, name)
            : throw new DirectoryNotFoundException($"{folder}: the '{name}' component folder is missing.");
        string? Variant(string dir, string plain) => variant is not null && File.Exists(Path.Combine(dir, plain.Replace(".safetensors", $".{variant}.safetensors"))) ? variant : null;

        var unetDir = Sub("unet");
        var unetVariant = Variant(unetDir, "diffusion_pytorch_model.safetensors");
        return new StableDiffusionModel
        {
            Unet = UNet2DConditionModel.FromPretrained(unetDir, dtype, device, unetVariant),
            Vae = AutoencoderKL.FromPretrained(Sub("vae"), dtype, device, Variant(Sub("vae"), "diffusion_pytorch_model.safetensors")),
            TextEncoder = CLIPTextModel.FromPretrained(Sub("text_encoder"), dtype, device, Variant(Sub("text_encoder"), "model.safetensors")),
            Tokenizer = ClipTokenizer.FromFolder(Sub("tokenizer")),
            SchedulerConfig = SchedulerConfig.Load(Path.Combine(Sub("scheduler"), "scheduler_config.json")),
            Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder))),
            IdentityFile = PretrainedFiles.Weights(unetDir, unetVariant),
            Device = device ?? CPU,
            DType = dtype,
        };
    }
}
