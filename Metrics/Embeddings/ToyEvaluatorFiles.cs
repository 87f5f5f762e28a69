namespace DiffusionPeft.Metrics;

/// <summary>
/// The toy world's own evaluators (an ONNX DINO, CLIP vision and CLIP text trained on toy scenes, and the toy
/// tokenizer), shipped next to the embedded toy model: what `dpeft eval` uses when no metric models are given.
/// They measure toy-world DreamBooth runs; their numbers are not comparable with real DINO / CLIP ones.
/// </summary>
public static class ToyEvaluatorFiles
{
    public const string DinoFile = "dino.onnx", ClipVisionFile = "clip-vision.onnx", ClipTextFile = "clip-text.onnx", TokenizerFolder = "tokenizer";

    /// <summary>How reports name these evaluators.</summary>
    public const string Description = "toy-world (not real DINO/CLIP)";

    /// <summary>Names another folder to use instead of the shipped one (a custom install; tests).</summary>
    public const string FolderVariable = "DPEFT_TOY_EVALUATORS";

    /// <summary>Where they ship: <c>&lt;app base dir&gt;/embedded/toy-world/evaluators/</c>, unless <see cref="FolderVariable"/> names another folder.</summary>
    public static string ShippedFolder => Environment.GetEnvironmentVariable(FolderVariable) is { Length: > 0 } folder
        ? Path.GetFullPath(folder)
        : Path.Combine(AppContext.BaseDirectory, "embedded", "toy-world", "evaluators");

    public static MetricModelPaths Paths(string folder) =>
        new(Path.Combine(folder, DinoFile), Path.Combine(folder, ClipVisionFile), Path.Combine(folder, ClipTextFile));

    public static string Tokenizer(string folder) => Path.Combine(folder, TokenizerFolder);

    /// <summary>The manifest an export writes beside the models; its "evaluators" value says what they are.</summary>
    public const string ManifestFile = "evaluators.json";

    /// <summary>
    /// <see cref="Description"/>-like text when the three models lie in one folder with an export manifest that names
    /// them (toy evaluators passed by path); null otherwise.
    /// </summary>
    public static string? DescribeFolderOf(MetricModelPaths paths)
    {
        var folders = new[] { paths.Dino, paths.ClipVision, paths.ClipText }.Select(p => Path.GetDirectoryName(Path.GetFullPath(p))).Distinct().ToList();
        var manifest = Path.Combine(folders[0]!, ManifestFile);
        if (folders.Count != 1 || !File.Exists(manifest)) return null;
        try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(manifest))?["evaluators"]?.GetValue<string>(); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException) { return null; }
    }

    /// <summary>The evaluators in <paramref name="folder"/> as the fidelity metrics take them (reports name them <see cref="Description"/>).</summary>
    public static FidelityModels Load(string folder)
    {
        if (!Exist(folder)) throw new FileNotFoundException($"{folder}: no toy-world evaluators (dino.onnx, clip-vision.onnx, clip-text.onnx, tokenizer/).");
        var tokenizer = DiffusionPeft.Core.Text.ClipTokenizer.FromFolder(Tokenizer(folder));
        return new FidelityModels(Paths(folder), t => tokenizer.EncodeForModel(t).InputIds) { Evaluators = Description };
    }

    /// <summary>Whether <paramref name="folder"/> holds all three models and the tokenizer's vocab.json and merges.txt.</summary>
    public static bool Exist(string folder)
    {
        var p = Paths(folder);
        return File.Exists(p.Dino) && File.Exists(p.ClipVision) && File.Exists(p.ClipText)
               && File.Exists(Path.Combine(Tokenizer(folder), "vocab.json")) && File.Exists(Path.Combine(Tokenizer(folder), "merges.txt"));
    }
}
