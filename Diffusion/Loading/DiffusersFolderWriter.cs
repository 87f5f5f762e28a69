using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// Writes a loaded <see cref="StableDiffusionModel"/> as a diffusers pipeline folder that <see cref="StableDiffusionLoader"/>
/// (and diffusers' <c>StableDiffusionPipeline.from_pretrained</c>) reads: model_index.json, unet/, vae/, text_encoder/
/// (config.json + safetensors with the upstream key names), tokenizer/, scheduler/ and the model's own sampling defaults
/// (generation_config.json) where it has them. The folder is built beside the
/// target and renamed into place, so a kill leaves either nothing or the whole folder.
/// </summary>
public static class DiffusersFolderWriter
{
    /// <param name="dtype">Dtype of the weight files (float32 or bfloat16/float16 for small folders); null: the model's.</param>
    /// <param name="overrides">Tensors written in place of the model's, by component and key ("unet.conv_in.weight"):
    /// full fine-tuning's fp32 master weights of a model that computes in bf16.</param>
    /// <param name="fp32Keys">Keys (as in <paramref name="overrides"/>) written in float32 whatever <paramref name="dtype"/>:
    /// weights whose rounding costs far more than the others' (conditioning whitening's folded projections). Loaders
    /// cast each tensor to the model's dtype, diffusers' too.</param>
    public static void Write(StableDiffusionModel model, string folder, ScalarType? dtype = null, IReadOnlyDictionary<string, Tensor>? overrides = null,
        IReadOnlySet<string>? fp32Keys = null)
    {
        var target = Path.GetFullPath(folder);
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
            throw new IOException($"{target}: the folder exists and is not empty.");
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Environment.ProcessId}");
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);

        var indented = new JsonSerializerOptions { WriteIndented = true };
        void Json(string rel, JsonObject o) => AtomicFile.WriteAllText(Path.Combine(temp, rel), o.ToJsonString(indented));
        void Weights(string rel, string component, nn.Module module)
        {
            using var scope = NewDisposeScope();
            var tensors = module.state_dict().ToDictionary(kv => kv.Key, kv =>
            {
                var key = $"{component}.{kv.Key}";
                var value = overrides is not null && overrides.TryGetValue(key, out var o) ? o : kv.Value;
                var written = fp32Keys is not null && fp32Keys.Contains(key) ? ScalarType.Float32 : dtype ?? value.dtype;
                return value.detach().to_type(written).cpu();
            });
            SafetensorsWriter.Write(Path.Combine(temp, rel), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }

        foreach (var dir in new[] { "unet", "vae", "text_encoder", "tokenizer", "scheduler" }) Directory.CreateDirectory(Path.Combine(temp, dir));
        Json("model_index.json", new JsonObject
        {
            ["_class_name"] = "StableDiffusionPipeline",
            ["_diffusers_version"] = "0.25.0",
            ["feature_extractor"] = new JsonArray(null, null),
            ["requires_safety_checker"] = false,
            ["safety_checker"] = new JsonArray(null, null),
            ["scheduler"] = new JsonArray("diffusers", model.SchedulerConfig.ClassName ?? "PNDMScheduler"),
            ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
        });
        Json(Path.Combine("unet", "config.json"), model.Unet.Config.ToJson());
        Weights(Path.Combine("unet", "diffusion_pytorch_model.safetensors"), "unet", model.Unet);
        Json(Path.Combine("vae", "config.json"), model.Vae.Config.ToJson());
        Weights(Path.Combine("vae", "diffusion_pytorch_model.safetensors"), "vae", model.Vae);
        Json(Path.Combine("text_encoder", "config.json"), model.TextEncoder.Config.ToJson());
        Weights(Path.Combine("text_encoder", "model.safetensors"), "text_encoder", model.TextEncoder);
        model.Tokenizer.Save(Path.Combine(temp, "tokenizer"));
        AtomicFile.WriteAllText(Path.Combine(temp, "scheduler", "scheduler_config.json"), model.SchedulerConfig.ToJsonText());
        model.Generation?.Write(temp);

        if (Directory.Exists(target)) Directory.Delete(target);
        Directory.Move(temp, target);
    }
}
