using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Metrics;

namespace DiffusionPeft.Cli.Commands;

/// <summary>A parsed `dpeft bench-dreambooth` invocation.</summary>
public sealed record BenchDreamBoothJob
{
    public string? Model { get; init; }
    public string? ConfigsFrom { get; init; }
    public string? Adapters { get; init; }
    public double AdapterScale { get; init; } = 1.0;
    public string? Subjects { get; init; }
    public IReadOnlyList<string> OnlySubjects { get; init; } = [];
    public string? Real { get; init; }
    public required string OutputDir { get; init; }
    public string Identifier { get; init; } = "sks";
    public int ImagesPerPrompt { get; init; } = 4;
    public long Seed { get; init; }
    public int Steps { get; init; } = 30;
    public string Sampler { get; init; } = "dpm++2m_karras";
    /// <summary>Null: the model's default (<see cref="StableDiffusionModel.DefaultGuidanceScale"/>).</summary>
    public double? GuidanceScale { get; init; }
    public int? Size { get; init; }
    public int BatchSize { get; init; } = 4;
    public string Label { get; init; } = "bench";
    public Shard Shard { get; init; } = Shard.All;
    public bool ScoreOnly { get; init; }
    public string Device { get; init; } = "cpu";
    public string DType { get; init; } = "fp32";
    public bool Quiet { get; init; }
    /// <summary>The metric models; null: generate only.</summary>
    public FidelityModels? Models { get; init; }
}

/// <summary>
/// Runs `dpeft bench-dreambooth`: per subject, the protocol's prompts with its adapter from fixed seeds, then DINO,
/// CLIP-I and CLIP-T against the real images (when they and the metric models are given).
/// </summary>
public static class BenchDreamBoothRunner
{
    public static int Run(BenchDreamBoothJob job, TextWriter output, TextWriter error)
    {
        var subjectsPath = job.Subjects ?? DreamBoothProtocol.FindPromptsDir();
        var protocol = LoadProtocol(subjectsPath);
        var chosen = protocol.Subjects.Where(s => job.OnlySubjects.Count == 0 || job.OnlySubjects.Contains(s.Folder)).ToList();
        if (chosen.Count == 0) throw new ArgumentException($"no subject of {subjectsPath} matches --subject {string.Join(", ", job.OnlySubjects)}.");
        var generatedRoot = Path.Combine(job.OutputDir, "generated");

        if (!job.ScoreOnly)
        {
            var mine = chosen.Where((_, i) => job.Shard.Owns(i)).ToList();
            var specsBySubject = mine.ToDictionary(s => s.Folder, s => job.Adapters is null ? [] : new List<AdapterSpec> { new(AdapterFor(job.Adapters, s.Folder), job.AdapterScale) });
            var device = TorchOptions.ParseDevice(job.Device);
            using var sd = ModelArguments.Load(job.Model, TorchOptions.ResolveDType(job.DType, device, m => error.WriteLine($"warning: {m}")), device, error,
                "benchmarking (a smoke test of the protocol, not a benchmark)", configsFrom: job.ConfigsFrom);
            int px = job.Size ?? sd.NativeResolution;
            foreach (var s in mine)
            {
                var prompts = protocol.PromptsFor(s, job.Identifier).Select(p => new GenerationOptions
                {
                    Prompt = p, Count = job.ImagesPerPrompt, Seed = job.Seed, Steps = job.Steps, Sampler = job.Sampler,
                    GuidanceScale = job.GuidanceScale ?? sd.DefaultGuidanceScale, Width = px, Height = px, BatchSize = job.BatchSize, Adapters = specsBySubject[s.Folder],
                }).ToList();
                foreach (var p in prompts) p.Validate($"subject {s.Folder}");
                var plan = new GenerationPlan(prompts, Path.Combine(generatedRoot, s.Folder));
                error.WriteLine($"{s.Folder}: {plan.Pending(Shard.All).Count()} of {plan.All.Count} images to generate");
                var progress = new GenerateRunner.CliGenerationProgress(new ProgressLine(error, "images", job.Quiet));
                new BatchGenerator(sd) { ApplyAdapters = specs => ActiveAdapters.Apply(sd, specs, progress.Warning) }.Run(plan, Shard.All, progress);
            }
            if (job.Shard.Count > 1)
            {
                output.WriteLine($"shard {job.Shard}: generated {mine.Count} subjects under {Path.GetFullPath(generatedRoot)}; score them all with --score-only once every shard is done.");
                return 0;
            }
        }

        if (job.Real is not { } realDir || job.Models is not { } models)
        {
            output.WriteLine($"images are in {Path.GetFullPath(generatedRoot)}; pass --real (and the metric models --dino, --clip-vision, --clip-text, --clip-tokenizer, unless the toy-world evaluators are installed) to score them.");
            return 0;
        }
        var report = FidelityEvaluation.Run(subjectsPath, generatedRoot, realDir, models, new FidelityOptions
        {
            Label = job.Label, Identifier = job.Identifier, CacheDir = Path.Combine(job.OutputDir, ".embcache"),
            Subjects = chosen.Select(s => s.Folder).ToList(), Progress = new Progress<string>(m => error.WriteLine(m)),
        });
        ReportWriter.WriteAll(report, Path.Combine(job.OutputDir, "eval"));
        foreach (var (image, reason) in report.SkippedImages) error.WriteLine($"skipped {image}: {reason}");
        var all = report.Scores.Overall;
        output.WriteLine($"{report.Label}: DINO {all.Dino.Mean:F4}  CLIP-I {all.ClipI.Mean:F4}  CLIP-T {all.ClipT.Mean:F4}; report: {Path.GetFullPath(Path.Combine(job.OutputDir, "eval", "report.html"))}");
        if (report.Evaluators is { } evaluators) output.WriteLine($"evaluators: {evaluators}");
        return 0;
    }

    private static DreamBoothProtocol LoadProtocol(string subjects)
    {
        if (Directory.Exists(subjects)) return DreamBoothProtocol.Load(subjects);
        if (!File.Exists(subjects)) throw new FileNotFoundException($"--subjects {subjects}: not found.");
        var dir = Path.GetDirectoryName(Path.GetFullPath(subjects))!;
        var full = DreamBoothProtocol.Load(File.Exists(Path.Combine(dir, DreamBoothProtocol.ObjectPromptsFile)) ? dir : DreamBoothProtocol.FindPromptsDir());
        return new DreamBoothProtocol(DreamBoothProtocol.LoadSubjects(subjects), full.ObjectPrompts, full.LivePrompts);
    }

    private static string AdapterFor(string dir, string subject)
    {
        foreach (var candidate in new[] { Path.Combine(dir, subject, "adapter.safetensors"), Path.Combine(dir, subject + ".safetensors") })
            if (File.Exists(candidate)) return candidate;
        throw new FileNotFoundException($"--adapters {dir}: no adapter for subject '{subject}' ({subject}/adapter.safetensors or {subject}.safetensors).");
    }
}
