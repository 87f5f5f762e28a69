using System.CommandLine;
using DiffusionPeft.Metrics;
using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Cli.Commands;

/// <summary>The ONNX model and tokenizer options shared by eval and bench-dreambooth.</summary>
public sealed class MetricModelOptions
{
    public required Option<string> Dino { get; init; }
    public required Option<string> ClipVision { get; init; }
    public required Option<string> ClipText { get; init; }
    public required Option<string> Tokenizer { get; init; }

    public static MetricModelOptions Create() => new()
    {
        Dino = new Option<string>("--dino") { Description = "DINO ViT-S/16 ONNX (pixel_values → last_hidden_state).", Required = true },
        ClipVision = new Option<string>("--clip-vision") { Description = "CLIP ViT-B/32 vision ONNX (pixel_values → image_embeds).", Required = true },
        ClipText = new Option<string>("--clip-text") { Description = "CLIP ViT-B/32 text ONNX (input_ids → text_embeds).", Required = true },
        Tokenizer = new Option<string>("--clip-tokenizer") { Description = "Folder with the CLIP model's vocab.json and merges.txt.", Required = true },
    };

    public void AddTo(Command c) { c.Options.Add(Dino); c.Options.Add(ClipVision); c.Options.Add(ClipText); c.Options.Add(Tokenizer); }

    public FidelityModels Resolve(ParseResult r)
    {
        var paths = new MetricModelPaths(r.GetValue(Dino)!, r.GetValue(ClipVision)!, r.GetValue(ClipText)!);
        foreach (var p in new[] { paths.Dino, paths.ClipVision, paths.ClipText })
            if (!File.Exists(p)) throw new FileNotFoundException($"{p}: ONNX model not found.");
        var tokenizer = ClipTokenizer.FromFolder(r.GetValue(Tokenizer)!);
        return new FidelityModels(paths, t => tokenizer.EncodeForModel(t).InputIds);
    }
}
