using System.CommandLine;
using DiffusionPeft.Metrics;
using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Cli.Commands;

/// <summary>
/// The ONNX model and tokenizer options shared by eval, eval-run and bench-dreambooth. Give all four, or none: then
/// the toy-world evaluators shipped next to the embedded model are used (<see cref="ToyEvaluatorFiles"/>), with a note.
/// </summary>
public sealed class MetricModelOptions
{
    public required Option<string?> Dino { get; init; }
    public required Option<string?> ClipVision { get; init; }
    public required Option<string?> ClipText { get; init; }
    public required Option<string?> Tokenizer { get; init; }

    private const string Default = " Default (with none of the four given): the toy-world evaluators shipped with dpeft.";

    public static MetricModelOptions Create() => new()
    {
        Dino = new Option<string?>("--dino") { Description = "DINO ViT-S/16 ONNX (pixel_values → last_hidden_state)." + Default },
        ClipVision = new Option<string?>("--clip-vision") { Description = "CLIP ViT-B/32 vision ONNX (pixel_values → image_embeds)." + Default },
        ClipText = new Option<string?>("--clip-text") { Description = "CLIP ViT-B/32 text ONNX (input_ids → text_embeds)." + Default },
        Tokenizer = new Option<string?>("--clip-tokenizer") { Description = "Folder with the CLIP model's vocab.json and merges.txt." + Default },
    };

    private IEnumerable<Option<string?>> All => [Dino, ClipVision, ClipText, Tokenizer];

    public void AddTo(Command c) { foreach (var o in All) c.Options.Add(o); }

    /// <summary>The models given, or the shipped toy-world evaluators when none is given (said on <paramref name="error"/>); fails when neither.</summary>
    public FidelityModels Resolve(ParseResult r, TextWriter error) =>
        TryResolve(r, error) ?? throw new ArgumentException(
            $"no metric models given: pass --dino, --clip-vision, --clip-text and --clip-tokenizer (ONNX exports of DINO ViT-S/16 and CLIP ViT-B/32, " +
            $"and the CLIP tokenizer folder). The toy-world evaluators that are the default are not installed in {ToyEvaluatorFiles.ShippedFolder}.");

    /// <summary>As <see cref="Resolve"/>, but null when no model is given and no toy-world evaluators are shipped.</summary>
    public FidelityModels? TryResolve(ParseResult r, TextWriter error)
    {
        var given = All.Where(o => r.GetValue(o) is not null).ToList();
        if (given.Count == 0) return ShippedToyEvaluators(error);
        if (given.Count < 4)
            throw new ArgumentException($"give all of --dino, --clip-vision, --clip-text and --clip-tokenizer, or none of them (for the toy-world evaluators); " +
                                        $"missing: {string.Join(", ", All.Except(given).Select(o => o.Name))}.");
        var paths = new MetricModelPaths(r.GetValue(Dino)!, r.GetValue(ClipVision)!, r.GetValue(ClipText)!);
        foreach (var p in new[] { paths.Dino, paths.ClipVision, paths.ClipText })
            if (!File.Exists(p)) throw new FileNotFoundException($"{p}: ONNX model not found.");
        var tokenizer = ClipTokenizer.FromFolder(r.GetValue(Tokenizer)!);
        return new FidelityModels(paths, t => tokenizer.EncodeForModel(t).InputIds);
    }

    /// <summary>The shipped toy-world evaluators (a note on <paramref name="error"/> when given), or null when this installation has none.</summary>
    public static FidelityModels? ShippedToyEvaluators(TextWriter? error)
    {
        var folder = ToyEvaluatorFiles.ShippedFolder;
        if (!ToyEvaluatorFiles.Exist(folder)) return null;
        error?.WriteLine($"note: no --dino/--clip-vision/--clip-text/--clip-tokenizer given: scoring with the {ToyEvaluatorFiles.Description} evaluators in {folder}. " +
                        "They are a DINO and a CLIP trained on the toy world, for toy-world runs; their numbers do not compare with real DINO/CLIP ones.");
        return ToyEvaluatorFiles.Load(folder);
    }
}
