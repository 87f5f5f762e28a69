using System.CommandLine;
using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.Metrics;
using DiffusionPeft.ToyModel.Dino;
using DiffusionPeft.ToyModel.Evaluators;
using DiffusionPeft.ToyModel.Onnx;
using DiffusionPeft.ToyWorld;

namespace DiffusionPeft.Cli.Commands;

/// <summary>
/// `dpeft toy-model evaluators build`: trains the toy DINO (resumable), exports it and a trained toy CLIP as the toy
/// world's ONNX evaluators and measures them; `dpeft toy-model evaluators check`: measures an evaluators folder
/// (default: the shipped one).
/// </summary>
public static class ToyEvaluatorsCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var command = new Command("evaluators", "The toy world's own DINO / CLIP evaluators (ONNX) that dpeft eval uses by default: build them, or check them.");
        command.Subcommands.Add(Build(output, error));
        command.Subcommands.Add(Check(output));
        return command;
    }

    private static Command Build(TextWriter output, TextWriter error)
    {
        var clip = new Option<string>("--clip") { Description = "The trained toy CLIP: the recipe's OUT/clip stage folder (or its model/ folder).", Required = true };
        var dinoRun = new Option<string>("--dino-run") { Description = "The toy DINO's stage folder: trained there (or resumed, or reused when done).", Required = true };
        var outDir = new Option<string>("--out") { Description = "The evaluators folder: dino.onnx, clip-vision.onnx, clip-text.onnx, tokenizer/, evaluators.json, sanity.json/md.", Required = true };
        var steps = new Option<int?>("--dino-steps") { Description = "DINO optimizer steps (default: the shipped evaluator's)." };
        var worldSeed = new Option<long>("--world-seed") { DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Seed of the DINO's initialisation, data order and views.", DefaultValueFactory = _ => 0 };
        var storage = new Option<string>("--weights") { Description = "fp16 (weights stored as float16, computed in float32; half the size) or fp32.", DefaultValueFactory = _ => "fp16" };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for torch (1 is faster on a machine busy with other work)." };
        var scenes = new Option<int>("--scenes") { Description = "Held-out scenes of the CLIP-T check.", DefaultValueFactory = _ => 256 };
        var quiet = new Option<bool>("--quiet");
        var command = new Command("build", "Train the toy DINO (resumable: rerun the same command), export it and the toy CLIP to ONNX, and measure them.")
        {
            clip, dinoRun, outDir, steps, worldSeed, seed, storage, device, threads, scenes, quiet,
        };
        command.SetAction(r =>
        {
            var weights = r.GetValue(storage)!.ToLowerInvariant() switch
            {
                "fp16" => OnnxWeightStorage.Float16,
                "fp32" => OnnxWeightStorage.Float32,
                var w => throw new ArgumentException($"--weights '{w}': expected fp16 or fp32."),
            };
            if (r.GetValue(threads) is { } n) TorchSharp.torch.set_num_threads(n);
            var options = new ToyDinoOptions { WorldSeed = r.GetValue(worldSeed), Seed = r.GetValue(seed), Device = r.GetValue(device)! };
            if (r.GetValue(steps) is { } s) options = options with { Steps = s };
            var progress = new CliTrainingProgress(new ProgressLine(error, "steps", r.GetValue(quiet)));
            using var ctrlC = new ConsoleCancellation(error, "saving a checkpoint; rerun the same command to resume...");
            var report = ToyDino.Train(r.GetValue(dinoRun)!, new World(options.WorldSeed), options, progress, ctrlC.Token)
                         ?? throw new OperationCanceledException("the toy DINO's training was interrupted; rerun the same command to resume");
            output.WriteLine($"dino: {report.Steps} steps, loss {report.FirstLoss:G4} → {report.LastLoss:G4}, {report.Seconds / 60:F1} min; {report.Measurements.ToJsonString()}");

            var export = ToyEvaluators.Export(r.GetValue(clip)!, r.GetValue(dinoRun)!, r.GetValue(outDir)!, weights, options.WorldSeed);
            output.WriteLine($"exported to {export.Folder}: dino.onnx {Kib(export.DinoBytes)}, clip-vision.onnx {Kib(export.ClipVisionBytes)}, " +
                             $"clip-text.onnx {Kib(export.ClipTextBytes)} ({weights}); ONNX vs TorchSharp mean cosine: DINO {export.DinoCosine:F6}, " +
                             $"CLIP vision {export.ClipVisionCosine:F6}, CLIP text {export.ClipTextCosine:F6}");
            var sanity = ToyEvaluatorSanity.Run(export.Folder, options.WorldSeed, r.GetValue(scenes));
            ToyEvaluatorSanity.Write(sanity, export.Folder);
            output.Write(ToyEvaluatorSanity.Markdown(sanity));
            return 0;
        });
        return command;
    }

    private static Command Check(TextWriter output)
    {
        var folder = new Option<string?>("--evaluators") { Description = $"An evaluators folder (default: the shipped one, {ToyEvaluatorFiles.ShippedFolder})." };
        var worldSeed = new Option<long>("--world-seed") { DefaultValueFactory = _ => 0 };
        var scenes = new Option<int>("--scenes") { Description = "Held-out scenes of the CLIP-T check.", DefaultValueFactory = _ => 256 };
        var outDir = new Option<string?>("--out") { Description = "Also write sanity.json and sanity.md here." };
        var command = new Command("check", "Measure toy evaluators: CLIP-T caption retrieval on held-out scenes, DINO / CLIP-I on the subjects' held-out views, with chance levels.")
        {
            folder, worldSeed, scenes, outDir,
        };
        command.SetAction(r =>
        {
            var sanity = ToyEvaluatorSanity.Run(r.GetValue(folder) ?? ToyEvaluatorFiles.ShippedFolder, r.GetValue(worldSeed), r.GetValue(scenes));
            if (r.GetValue(outDir) is { } o)
            {
                Directory.CreateDirectory(o);
                ToyEvaluatorSanity.Write(sanity, o);
            }
            output.Write(ToyEvaluatorSanity.Markdown(sanity));
            return 0;
        });
        return command;
    }

    private static string Kib(long bytes) => $"{bytes / 1024.0:F0} KiB";
}
