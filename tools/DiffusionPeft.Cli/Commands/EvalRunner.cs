using DiffusionPeft.Metrics;

namespace DiffusionPeft.Cli.Commands;

/// <summary>A parsed `dpeft eval` invocation.</summary>
public sealed record EvalJob(string Subjects, string Generated, string Real, string OutputDir, string Label, string Identifier,
                             bool ClipTWithoutIdentifier, string? CacheDir, int BatchSize, IReadOnlyList<string>? OnlySubjects,
                             FidelityModels Models);

/// <summary>Runs `dpeft eval`: scores the generated images against the real ones and writes report.json, CSVs and report.html.</summary>
public static class EvalRunner
{
    public static int Run(EvalJob job, TextWriter output, TextWriter error)
    {
        var report = FidelityEvaluation.Run(job.Subjects, job.Generated, job.Real, job.Models, new FidelityOptions
        {
            Label = job.Label,
            Identifier = job.Identifier,
            ClipTWithoutIdentifier = job.ClipTWithoutIdentifier,
            CacheDir = job.CacheDir ?? Path.Combine(job.OutputDir, ".embcache"),
            BatchSize = job.BatchSize,
            Subjects = job.OnlySubjects,
            Progress = new Progress<string>(m => error.WriteLine(m)),
        });
        ReportWriter.WriteAll(report, job.OutputDir);
        var all = report.Scores.Overall;
        output.WriteLine($"{report.Label}: DINO {Fmt(all.Dino)}  CLIP-I {Fmt(all.ClipI)}  CLIP-T {Fmt(all.ClipT)}  (real vs real: DINO {Fmt(report.RealVsReal.Dino)}, CLIP-I {Fmt(report.RealVsReal.ClipI)})");
        if (report.Evaluators is { } evaluators) output.WriteLine($"evaluators: {evaluators}");
        foreach (var (subject, reason) in report.Skipped) error.WriteLine($"skipped {subject}: {reason}");
        if (report.SkippedImages.Count > 0)
        {
            error.WriteLine($"skipped {report.SkippedImages.Count} image(s) that could not be used:");
            foreach (var (image, reason) in report.SkippedImages) error.WriteLine($"  {image}: {reason}");
        }
        output.WriteLine($"reports written to {Path.GetFullPath(job.OutputDir)} (report.html, report.json, *.csv)");
        return 0;
    }

    public static string Fmt(Stat s) => double.IsNaN(s.Mean) ? "–" : $"{s.Mean:F4} ± {s.Std:F4} (n={s.Count})";
}
