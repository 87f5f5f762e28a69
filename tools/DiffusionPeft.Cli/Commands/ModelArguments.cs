using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Cli.Commands;

/// <summary>The --model choice every command shares: a checked path, or the embedded default with its note.</summary>
public static class ModelArguments
{
    /// <summary>Fails fast (before anything loads) when --model names nothing on disk.</summary>
    public static void Check(string? model)
    {
        if (!EmbeddedDefaultModel.IsRequested(model) && !File.Exists(model) && !Directory.Exists(model))
            throw new FileNotFoundException($"--model {model}: no such model folder or checkpoint file.");
    }

    /// <summary>Loads --model (or the embedded default, saying so on <paramref name="error"/> as <c>note: ... {purpose} ...</c>).</summary>
    public static StableDiffusionModel Load(string? model, ScalarType dtype, Device device, TextWriter error, string purpose,
                                            string? variant = null, string? configsFrom = null, string? tokenizerDir = null)
    {
        Check(model);
        var sd = StableDiffusionLoader.LoadOrEmbedded(model, dtype, device, variant, configsFrom, tokenizerDir);
        if (sd.IsEmbeddedDefault) error.WriteLine(EmbeddedDefaultModel.Note(purpose, sd));
        return sd;
    }
}
