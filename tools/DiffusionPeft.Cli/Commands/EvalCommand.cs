using System.CommandLine;
using DiffusionPeft.Metrics;
using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Cli.Commands;

/// <summary>`dpeft eval`: DINO, CLIP-I and CLIP-T of generated images against real ones, per image, prompt and subject.</summary>
public static class EvalCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var subjects = new Option<string>("--subjects") { Description = "Subjects CSV (subject,class,kind) or a prompts folder holding dreambooth_subjects.csv.", DefaultValueFactory = _ => "prompts/dreambooth_subjects.csv" };
        var generated = new Option<string>("--generated") { Description = "Generated images: DIR/<subject>/**.png (prompt read from the PNG's parameters chunk).", Required = true };
        var real = new Option<string>("--real") { Description = "Real images: DIR/<subject>/*.{jpg,png,webp}.", Required = true };
        var models = MetricModelOptions.Create();
        var outDir = new Option<string>("--out") { Description = "Report folder: report.json, CSV tables, report.html.", DefaultValueFactory = _ => "eval" };
        var label = new Option<string>("--label") { Description = "Names this run in reports (adapter, checkpoint...).", DefaultValueFactory = _ => "run" };
        var identifier = new Option<string>("--identifier") { Description = "The rare identifier in the prompts.", DefaultValueFactory = _ => "sks" };
        var withoutId = new Option<bool>("--clip-t-without-identifier") { Description = "Score CLIP-T against the prompt with the identifier removed (recorded in the report)." };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder (default: OUT/.embcache); survives crashes." };
        var batch = new Option<int>("--batch") { Description = "Images per ONNX call.", DefaultValueFactory = _ => 16 };
        var subjectFilter = new Option<string[]>("--subject") { Description = "Only these subjects (repeatable).", DefaultValueFactory = _ => [] };

        var command = new Command("eval", "Score generated images with DINO, CLIP-I and CLIP-T (DreamBooth protocol) and write JSON, CSV and HTML reports.")
        {
            subjects, generated, real, outDir, label, identifier, withoutId, cache, batch, subjectFilter,
        };
        models.AddTo(command);
        command.SetAction(r =>
        {
            var o = r.GetValue(outDir)!;
            var fidelityModels = models.Resolve(r);
            var progress = new Progress<string>(m => error.WriteLine(m));
            var report = FidelityEvaluation.Run(r.GetValue(subjects)!, r.GetValue(generated)!, r.GetValue(real)!, fidelityModels, new FidelityOptions
            {
                Label = r.GetValue(label)!,
                Identifier = r.GetValue(identifier)!,
                ClipTWithoutIdentifier = r.GetValue(withoutId),
                CacheDir = r.GetValue(cache) ?? Path.Combine(o, ".embcache"),
                BatchSize = r.GetValue(batch),
                Subjects = r.GetValue(subjectFilter) is { Length: > 0 } s ? s : null,
                Progress = progress,
            });
            ReportWriter.WriteAll(report, o);
            var all = report.Scores.Overall;
            output.WriteLine($"{report.Label}: DINO {Fmt(all.Dino)}  CLIP-I {Fmt(all.ClipI)}  CLIP-T {Fmt(all.ClipT)}  (real vs real: DINO {Fmt(report.RealVsReal.Dino)}, CLIP-I {Fmt(report.RealVsReal.ClipI)})");
            foreach (var (subject, reason) in report.Skipped) error.WriteLine($"skipped {subject}: {reason}");
            if (report.SkippedImages.Count > 0)
            {
                error.WriteLine($"skipped {report.SkippedImages.Count} image(s) that could not be used:");
                foreach (var (image, reason) in report.SkippedImages) error.WriteLine($"  {image}: {reason}");
            }
            output.WriteLine($"reports written to {Path.GetFullPath(o)} (report.html, report.json, *.csv)");
            return 0;
        });
        return command;
    }

    private static string Fmt(Stat s) => double.IsNaN(s.Mean) ? "–" : $"{s.Mean:F4} ± {s.Std:F4} (n={s.Count})";
}
