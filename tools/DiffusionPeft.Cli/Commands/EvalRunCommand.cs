using System.CommandLine;
using DiffusionPeft.Metrics;

namespace DiffusionPeft.Cli.Commands;

/// <summary>
/// `dpeft eval-run RUN_DIR`: scores the validation images of every checkpoint step of a training run against the
/// run's instance images and names the best step by the chosen metric.
/// </summary>
public static class EvalRunCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var run = new Argument<string>("run") { Description = "A dpeft train run folder (with validation/step-*/)." };
        var real = new Option<string?>("--real") { Description = "Real images of the subject (default: the run's --images folder from its config.yaml)." };
        var metric = new Option<string>("--metric") { Description = "dino, clip-i or clip-t: how the best checkpoint is chosen.", DefaultValueFactory = _ => "dino" };
        var identifier = new Option<string>("--identifier") { Description = "The rare identifier in the validation prompts.", DefaultValueFactory = _ => "sks" };
        var models = MetricModelOptions.Create();
        var command = new Command("eval-run", "Score each checkpoint's validation images of a training run and name the best checkpoint.") { run, real, metric, identifier };
        models.AddTo(command);
        command.SetAction(r =>
        {
            var runDir = r.GetValue(run)!;
            var validation = Path.Combine(runDir, "validation");
            if (!Directory.Exists(validation)) throw new DirectoryNotFoundException($"{validation}: no validation images (train with --validation-prompt and --validate-every).");
            var steps = Directory.GetDirectories(validation, "step-*").Order(StringComparer.Ordinal).ToList();
            if (steps.Count == 0) throw new DirectoryNotFoundException($"{validation}: no step-* folders.");
            var realDir = r.GetValue(real) ?? RunImages(runDir);
            Func<FidelityReport, double> pick = r.GetValue(metric)!.ToLowerInvariant() switch
            {
                "dino" => rep => rep.Scores.Overall.Dino.Mean,
                "clip-i" => rep => rep.Scores.Overall.ClipI.Mean,
                "clip-t" => rep => rep.Scores.Overall.ClipT.Mean,
                var m => throw new ArgumentException($"--metric '{m}': expected dino, clip-i or clip-t."),
            };
            var fidelityModels = models.Resolve(r, error);

            // FidelityEvaluation reads DIR/<subject>/...: link each step's images and the real images under one subject name.
            var work = Path.Combine(runDir, "eval", ".layout");
            var reports = new List<(string Step, FidelityReport Report, string Json)>();
            foreach (var stepDir in steps)
            {
                var step = Path.GetFileName(stepDir);
                var gen = Path.Combine(work, step, "generated");
                var realLink = Path.Combine(work, step, "real");
                Directory.CreateDirectory(gen);
                Directory.CreateDirectory(realLink);
                Relink(Path.Combine(gen, "subject"), stepDir);
                Relink(Path.Combine(realLink, "subject"), realDir);
                var subjects = Path.Combine(work, "subjects.csv");
                File.WriteAllText(subjects, "subject,class,kind\nsubject,subject,object\n");
                var report = FidelityEvaluation.Run(subjects, gen, realLink, fidelityModels, new FidelityOptions
                {
                    Label = step, Identifier = r.GetValue(identifier)!, CacheDir = Path.Combine(runDir, "eval", ".embcache"),
                });
                var outDir = Path.Combine(runDir, "eval", step);
                ReportWriter.WriteAll(report, outDir);
                reports.Add((step, report, Path.Combine(outDir, "report.json")));
                var s = report.Scores.Overall;
                output.WriteLine($"{step}: DINO {s.Dino.Mean:F4}  CLIP-I {s.ClipI.Mean:F4}  CLIP-T {s.ClipT.Mean:F4}  (n={s.Dino.Count})");
                foreach (var (image, reason) in report.SkippedImages) error.WriteLine($"{step}: skipped {image}: {reason}");
            }
            var best = reports.Where(x => !double.IsNaN(pick(x.Report))).MaxBy(x => pick(x.Report));
            HtmlReport.WriteComparison(reports.Select(x => x.Json), Path.Combine(runDir, "eval", "checkpoints.html"));
            if (best.Report is null) { error.WriteLine("no step could be scored."); return 1; }
            output.WriteLine($"best by {r.GetValue(metric)}: {best.Step} ({pick(best.Report):F4}); comparison: {Path.GetFullPath(Path.Combine(runDir, "eval", "checkpoints.html"))}");
            return 0;
        });
        return command;
    }

    /// <summary>The run's --images folder, read from its resolved config.yaml.</summary>
    private static string RunImages(string runDir)
    {
        var config = Path.Combine(runDir, "config.yaml");
        if (!File.Exists(config)) throw new FileNotFoundException($"{config}: not a run folder; pass --real.");
        var images = DreamBooth.Config.TrainConfigYaml.Load(config, validate: false).Images;
        if (string.IsNullOrEmpty(images)) throw new InvalidDataException($"{config}: no images entry; pass --real.");
        return Path.IsPathRooted(images) ? images : Path.GetFullPath(Path.Combine(runDir, images));
    }

    private static void Relink(string link, string target)
    {
        if (Directory.Exists(link) || File.Exists(link)) Directory.Delete(link);
        Directory.CreateSymbolicLink(link, Path.GetFullPath(target));
    }
}
