using DiffusionPeft.Core.Text;
using DiffusionPeft.Metrics;

namespace DiffusionPeft.Cli.Commands;

/// <summary>The toy world's DINO and CLIP exports that ship next to the embedded model (embedded/toy-world/evaluators/).</summary>
public static class ToyEvaluatorModels
{
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "embedded", "toy-world", "evaluators");

    /// <summary>The shipped evaluators, or null when this installation has none.</summary>
    public static FidelityModels? Locate()
    {
        var paths = new MetricModelPaths(Path.Combine(Folder, "dino.onnx"), Path.Combine(Folder, "clip-vision.onnx"), Path.Combine(Folder, "clip-text.onnx"));
        var tokenizerDir = Path.Combine(Folder, "tokenizer");
        if (!File.Exists(paths.Dino) || !File.Exists(paths.ClipVision) || !File.Exists(paths.ClipText) || !Directory.Exists(tokenizerDir)) return null;
        var tokenizer = ClipTokenizer.FromFolder(tokenizerDir);
        return new FidelityModels(paths, t => tokenizer.EncodeForModel(t).InputIds);
    }
}
