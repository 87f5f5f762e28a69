using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>Puts a freshly loaded model in eval mode, in the requested dtype, on the requested device.</summary>
public static class ModelPlacement
{
    public static T Place<T>(T module, ScalarType dtype, Device? device) where T : nn.Module
    {
        module.eval();
        if (dtype != ScalarType.Float32) module.to(dtype);
        if (device is not null) module.to(device);
        return module;
    }
}
