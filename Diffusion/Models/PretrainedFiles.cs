using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>File conventions of a diffusers model folder (diffusion_pytorch_model[.variant].safetensors).</summary>
public static class PretrainedFiles
{
    public static string Weights(string folder, string? variant)
    {
        var name = variant is null ? "diffusion_pytorch_model.safetensors" : $"diffusion_pytorch_model.{variant}.safetensors";
        var path = Path.Combine(folder, name);
        if (File.Exists(path)) return path;
        if (File.Exists(Path.Combine(folder, "diffusion_pytorch_model.bin")))
            throw new NotSupportedException($"{folder}: only a pickle (.bin) checkpoint is present; it is never executed. Convert it to safetensors.");
        throw new FileNotFoundException($"{path}: weights file not found.", path);
    }

    public static T Place<T>(T module, ScalarType dtype, Device? device) where T : nn.Module
    {
        module.eval();
        if (dtype != ScalarType.Float32) module.to(dtype);
        if (device is not null) module.to(device);
        return module;
    }
}
