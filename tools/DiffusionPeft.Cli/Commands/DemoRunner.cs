using System.Diagnostics;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Adapters;
using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.Metrics;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld.Files;
using DiffusionPeft.ToyWorld.Judge;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.Cli.Commands;

/// <summary>A parsed `dpeft demo` invocation.</summary>
public sealed record DemoJob
{
    public required string OutputDir { get; init; }
    public string Subject { get; init; } = "sunny_star";
    public AdapterMethod Method { get; init; } = AdapterMethod.SingLora;
    public int Rank { get; init; } = 4;
    public int Steps { get; init; } = TrainConfig.EmbeddedModelDefaults.Steps;
    public double Lr { get; init; } = TrainConfig.EmbeddedModelDefaults.Lr;
    public int ImagesPerPrompt { get; init; } = 2;
    public int SamplingSteps { get; init; } = 25;
    public long Seed { get; init; }
    public bool Quiet { get; init; }
}

/// <summary>
/// `dpeft demo`: the toolkit's main job on the toy world, end to end, on the embedded model. A bundled toy subject's
/// instance images are written as a user's photo folder; an adapter is trained on them (DreamBoothRun); the protocol's
/// prompts for that subject are generated with fixed seeds by the base model and with the adapter; both sets are scored
/// with the toy DINO / CLIP-I / CLIP-T against the subject's held-out views and by the scene judge against their prompts;
/// one HTML page shows it all.
/// </summary>
public static class DemoRunner
{
    public static int Run(DemoJob job, TextWriter output, TextWriter error)
    {
        var clock = Stopwatch.StartNew();
        // Everything checked before anything is written.
        var subject = ToySubjects.ByName(job.Subject);
        if (job.ImagesPerPrompt < 1) throw new ArgumentException($"--n must be at least 1 (got {job.ImagesPerPrompt})");
        var models = MetricModelOptions.ShippedToyEvaluators(null) ?? throw new FileNotFoundException(
            $"the toy-world evaluators are not next to the embedded model ({ToyEvaluatorFiles.ShippedFolder}); rebuild or reinstall dpeft");
        var root = Path.GetFullPath(job.OutputDir);
        var data = Path.Combine(root, "data");
        var instances = Path.Combine(data, "instances", subject.Name);
        var heldOut = Path.Combine(data, "heldout");
        var protocol = Path.Combine(data, "protocol");
        var run = Path.Combine(root, "run");
        var config = TrainConfig.EmbeddedModelDefaults with
        {
            Model = EmbeddedDefaultModel.Keyword, Images = instances, Prompt = subject.InstancePrompt, Out = run, Method = job.Method, Rank = job.Rank,
            Steps = job.Steps, Lr = job.Lr, Seed = job.Seed, CheckpointEvery = 100, Keep = 1, Resume = "latest", PlotEvery = 25,
        };
        TrainConfigYaml.Validate(config, "dpeft demo");
        ToyWorldFiles.WriteSubjects(data, 0, subjects: [subject]);
        output.WriteLine($"subject {subject.Name} ('{subject.InstancePrompt}'): {subject.Description}; training images in {instances}");

        var progress = new CliTrainingProgress(new ProgressLine(error, "steps", job.Quiet));
        using var ctrlC = new ConsoleCancellation(error, "stopping after this step (rerun the same command to continue)...");
        var trained = DreamBoothRun.Run(config, progress, ctrlC.Token);
        if (trained.Interrupted) return TrainRunner.Interrupted;
        var adapter = Path.Combine(run, AdapterSession.FinalFile);

        var prompts = ToyDreamBoothPrompts.Templates.Select(t => ToyDreamBoothPrompts.Fill(t, subject)).ToList();
        var generated = new Dictionary<string, string>
        {
            ["base"] = Path.Combine(root, "generated-base"),
            [TrainConfigYaml.EnumName(job.Method)] = Path.Combine(root, "generated"),
        };
        using var model = EmbeddedDefaultModel.Create();
        var sampling = new ProtocolSampling(job.ImagesPerPrompt, job.Seed, job.SamplingSteps);
        foreach (var (label, folder) in generated)
            KeepOnlyImagesOf(folder, System.Text.Json.JsonSerializer.Serialize(new
            {
                model = model.ShortHash, sampler = model.DefaultSamplerKey, guidance = model.DefaultGuidanceScale,
                adapter = label == "base" ? "none" : FileHash.Sha256(adapter), n = job.ImagesPerPrompt, seed = job.Seed, steps = job.SamplingSteps,
            }), error);
        var plans = generated.ToDictionary(kv => kv.Key, kv => ToyProtocolImages.Generate(model, subject,
            kv.Key == "base" ? [] : [new AdapterSpec(adapter, 1.0)], sampling, kv.Value,
            new GenerateRunner.CliGenerationProgress(new ProgressLine(error, $"{kv.Key} images", job.Quiet)), ctrlC.Token));

        var scored = generated.ToDictionary(kv => kv.Key, kv => ToyProtocolImages.Score(kv.Value, subject, protocol, heldOut, models, kv.Key, Path.Combine(root, ".embcache")));
        var reports = scored.ToDictionary(kv => kv.Key, kv => kv.Value.Report);
        foreach (var (label, report) in reports) ReportWriter.WriteAll(report, Path.Combine(root, "eval", label));
        var judged = scored.ToDictionary(kv => kv.Key, kv => kv.Value.Judged);

        var before = reports["base"].Scores.Overall;
        var after = reports[TrainConfigYaml.EnumName(job.Method)].Scores.Overall;
        var real = reports["base"].RealVsReal;
        var rows = new List<ScoreRow>
        {
            new("DINO", before.Dino.Mean, after.Dino.Mean, real.Dino.Mean, "subject fidelity: toy DINO cosine to the held-out views (reference: held-out views among themselves)"),
            new("CLIP-I", before.ClipI.Mean, after.ClipI.Mean, real.ClipI.Mean, "subject fidelity: toy CLIP image cosine to the held-out views"),
            new("CLIP-T", before.ClipT.Mean, after.ClipT.Mean, null, "prompt fidelity: toy CLIP image-text cosine"),
        };
        foreach (var attribute in new[] { JudgeAttribute.Shape, JudgeAttribute.Position, JudgeAttribute.Size, JudgeAttribute.BackgroundColour, JudgeAttribute.BackgroundTexture, JudgeAttribute.Colour })
            if (judged["base"].Accuracy(attribute) is { } b && judged[TrainConfigYaml.EnumName(job.Method)].Accuracy(attribute) is { } a)
                rows.Add(new ScoreRow($"judge: {attribute}", b, a, null, $"share of images whose {attribute} matches the prompt (scene judge, {judged["base"].Count(attribute)} images)"));

        IReadOnlyList<string> Images(string label, int prompt) => plans[label].All.Where(i => i.PromptIndex == prompt).Select(i => i.PngPath).ToList();
        var pairs = prompts.Select((p, i) => new PromptPair(p, Images("base", i), Images(TrainConfigYaml.EnumName(job.Method), i))).ToList();
        var reportPath = Path.Combine(root, "report.html");
        PersonalizationReport.Write(new PersonalizationReportData
        {
            Title = $"{subject.Name}: {TrainConfigYaml.EnumName(job.Method)} rank {job.Rank} on the toy-world model",
            Facts =
            [
                $"'{subject.InstancePrompt}' = {subject.Description}", $"{Directory.GetFiles(instances, "*.png").Length} training images",
                $"{trained.Steps} steps at lr {job.Lr}", $"{prompts.Count} prompts × {job.ImagesPerPrompt} seeds", $"{clock.Elapsed.TotalMinutes:F1} min",
            ],
            InstanceImages = Directory.GetFiles(instances, "*.png").Order(StringComparer.Ordinal).ToList(),
            HeldOutImages = Directory.GetFiles(Path.Combine(heldOut, subject.Name), "*.png").Order(StringComparer.Ordinal).ToList(),
            Scores = rows,
            Pairs = pairs,
            LossPlot = Path.Combine(run, DreamBooth.Logging.LossPlot.FileName),
            Notes =
            [
                "DINO, CLIP-I and CLIP-T here are the toy world's own evaluators (a self-supervised image encoder and the contrastive text/image model the toy model was trained with, in ONNX), not the real DINO ViT-S/16 and CLIP ViT-B/32: their numbers compare runs on this world, not papers.",
                "The scene judge reads each generated image back (colours, shape, position, size, background) and checks what the prompt says; the subject's identifier counts as its class shape.",
                $"Details: eval/<run>/report.html (per prompt and per image), run/ (config.yaml, log.jsonl, checkpoints, adapter.safetensors).",
            ],
        }, reportPath);
        output.WriteLine($"DINO {before.Dino.Mean:F3} → {after.Dino.Mean:F3}, CLIP-I {before.ClipI.Mean:F3} → {after.ClipI.Mean:F3}, CLIP-T {before.ClipT.Mean:F3} → {after.ClipT.Mean:F3} (base → {TrainConfigYaml.EnumName(job.Method)})");
        output.WriteLine("judge: " + string.Join(", ", rows.Where(r => r.Name.StartsWith("judge: ", StringComparison.Ordinal))
            .Select(r => $"{r.Name["judge: ".Length..]} {100 * r.Before:F0}% → {100 * r.After:F0}%")));
        output.WriteLine($"report: {reportPath}");
        return 0;
    }

    /// <summary>
    /// A generated folder holds the images of one model, adapter and sampling. Generation skips images that exist and
    /// scoring reads the whole folder, so a rerun after more training (--steps) or with other sampling would keep and
    /// score the old ones: made-by.json names what made them, and a folder made by anything else is moved aside.
    /// </summary>
    private static void KeepOnlyImagesOf(string folder, string maker, TextWriter error)
    {
        var stamp = Path.Combine(folder, "made-by.json");
        if (Directory.Exists(folder) && (!File.Exists(stamp) || File.ReadAllText(stamp) != maker))
        {
            int n = 1;
            while (Directory.Exists($"{folder}.stale-{n}")) n++;
            Directory.Move(folder, $"{folder}.stale-{n}");
            error.WriteLine($"note: {Path.GetFileName(folder)}/ holds images of another adapter or sampling: moved to {Path.GetFileName(folder)}.stale-{n}/");
        }
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(stamp, maker);
    }
}
