using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// The strict load every model folder goes through (diffusers' and transformers' <c>from_pretrained</c>): config.json,
/// the folder's weights (<see cref="ComponentWeights"/>), the config's parameter count checked against them before
/// the model is built (<see cref="ModelSize"/>), the weights loaded by exact key, then the model placed. Bad input
/// surfaces as <see cref="InvalidInput"/>'s errors naming the file.
/// </summary>
public static class PretrainedComponent
{
    public static TModel Load<TConfig, TModel>(string folder, ScalarType dtype, Device? device, string? variant,
        Func<string, TConfig> loadConfig, Func<TConfig, double> minimumParameters, Func<TConfig, TModel> create,
        Action<TModel, ITensorSource> loadWeights) where TModel : nn.Module =>
        InvalidInput.Guard(() =>
        {
            var configPath = Path.Combine(folder, "config.json");
            var config = loadConfig(configPath);
            using var weights = ComponentWeights.Open(folder, variant);
            ModelSize.EnsureWeightsCanHold(minimumParameters(config), weights, configPath);
            var model = create(config);
            try { loadWeights(model, weights); }
            catch { model.Dispose(); throw; }
            return ModelPlacement.Place(model, dtype, device);
        });
}
