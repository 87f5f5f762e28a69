using System.Text;
using System.Text.Json;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.Experiments.Claims;
using DiffusionPeft.Metrics;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.Experiments.DreamBoothTable;

/// <summary>
/// The seeds' DreamBooth table on the toy world: every arm (<see cref="TableArm.Default"/>) × learning rate on a tuning
/// seed, then the chosen rate × every subject × the reported seeds, with the base model (floor) and the held-out views
/// among themselves (ceiling), and every arm again at <see cref="TableConfig.CommonLr"/>. Cells are resumable
/// (<see cref="TableCell"/>): rerun the same command to continue, and <see cref="Summarize"/> writes the table from
/// whatever cells exist.
/// </summary>
public static class ToyDreamBoothTable
{
    public static void Run(TableConfig config, string outDir, string model, string evaluatorsFolder, TextWriter log, CancellationToken cancel = default)
    {
        var data = TableData.Prepare(Path.Combine(outDir, "data"), model);
        var subjects = Subjects(config);
        var evaluators = ToyEvaluatorFiles.Load(evaluatorsFolder);
        var arms = TableArm.Default(config.Rank);
        using var baseModel = StableDiffusionLoader.LoadOrEmbedded(model);
        CheckSameModel(outDir, baseModel);
        var progress = new LogProgress(log);
        int done = 0, total = arms.Count * config.Lrs.Count * Math.Min(config.TuningSubjects, subjects.Count)
                              + (arms.Count + 1) * subjects.Count * config.Seeds.Count;
        int commonCells = arms.Count * subjects.Count * config.Seeds.Count;   // an upper bound until the rates are chosen
        CellResult Cell(TableArm arm, double lr, ToySubject s, long seed)
        {
            var dir = Path.Combine(outDir, "cells", arm.Name, arm.IsBase ? "-" : $"lr{lr:G3}", s.Name, $"seed{seed}");
            var r = TableCell.Run(arm, lr, s, seed, config, data, dir, baseModel, evaluators, progress, cancel);
            done++;
            log.WriteLine($"[{done}/{total + commonCells}] {arm.Name} lr {lr:G3} {s.Name} seed {seed}: DINO {r.Dino:F3} CLIP-I {r.ClipI:F3} CLIP-T {r.ClipT:F3} judge {r.JudgeAll:P0} ({r.Seconds:F0} s)");
            return r;
        }

        var chosen = new Dictionary<string, double>();
        foreach (var arm in arms)
        {
            var tuning = config.Lrs.Select(lr => (Lr: lr, Cells: subjects.Take(config.TuningSubjects).Select(s => Cell(arm, lr, s, config.TuningSeed)).ToList())).ToList();
            chosen[arm.Name] = tuning.OrderByDescending(t => t.Cells.Average(c => c.Dino + c.ClipT)).First().Lr;
        }
        AtomicFile.WriteAllText(Path.Combine(outDir, "chosen-lr.json"), JsonSerializer.Serialize(chosen, new JsonSerializerOptions { WriteIndented = true }));
        foreach (var seed in config.Seeds)
            foreach (var s in subjects)
            {
                Cell(TableArm.Base, 0, s, seed);
                foreach (var arm in arms) Cell(arm, chosen[arm.Name], s, seed);
            }
        if (config.CommonLr is not double common) return;
        var atCommon = arms.Where(a => chosen[a.Name] != common).ToList();
        commonCells = atCommon.Count * subjects.Count * config.Seeds.Count;
        foreach (var seed in config.Seeds)
            foreach (var s in subjects)
                foreach (var arm in atCommon) Cell(arm, common, s, seed);
    }

    /// <summary>Every arm at <see cref="TableConfig.CommonLr"/>, in the shape of the chosen rates (for <see cref="Summarize"/>).</summary>
    public static IReadOnlyDictionary<string, double> CommonRates(TableConfig config) =>
        config.CommonLr is double common ? TableArm.Default(config.Rank).ToDictionary(a => a.Name, _ => common) : new Dictionary<string, double>();

    public const string ModelStampFile = "model.json";

    /// <summary>
    /// Cells resume from disk, so a table continued on another model would mix two models' cells: the first run stamps
    /// the folder with the model's name and weights hash, and a later run on a different model stops with a clear error.
    /// </summary>
    public static void CheckSameModel(string outDir, Diffusion.Pipelines.StableDiffusionModel model)
    {
        var stamp = new ModelStamp(model.Name, model.FullHash ?? "in-memory");
        var path = Path.Combine(outDir, ModelStampFile);
        if (File.Exists(path))
        {
            var existing = JsonSerializer.Deserialize<ModelStamp>(File.ReadAllText(path));
            if (existing != stamp)
                throw new InvalidOperationException($"{path}: the cells in {outDir} were made with {existing?.Name} ({existing?.Sha256[..Math.Min(10, existing.Sha256.Length)]}), " +
                                                    $"not with {stamp.Name} ({stamp.Sha256[..Math.Min(10, stamp.Sha256.Length)]}); give another --out, or delete the folder to start over.");
            return;
        }
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(stamp, new JsonSerializerOptions { WriteIndented = true }));
    }

    public sealed record ModelStamp(string Name, string Sha256);

    public static IReadOnlyList<ToySubject> Subjects(TableConfig config) =>
        config.Subjects.Count == 0 ? ToySubjects.All : config.Subjects.Select(ToySubjects.ByName).ToList();

    private sealed class LogProgress(TextWriter log) : ITrainingProgress
    {
        public void Info(string message) { }
        public void Warning(string message) => log.WriteLine($"warning: {message}");
        public void Step(StepReport report) { }
    }

    /// <summary>All finished cells under <paramref name="outDir"/>.</summary>
    public static List<CellResult> Load(string outDir) =>
        Directory.Exists(Path.Combine(outDir, "cells"))
            ? Directory.EnumerateFiles(Path.Combine(outDir, "cells"), TableCell.ResultFile, SearchOption.AllDirectories)
                .Select(f => JsonSerializer.Deserialize<CellResult>(File.ReadAllText(f), TableCell.Json)!).ToList()
            : [];

    public sealed record ArmSummary(string Arm, string Budget, int Rank, double Lr, long Parameters, int N,
        Interval Dino, Interval ClipI, Interval ClipT, Interval JudgeAll, Interval DinoVsLora, Interval DinoVsBase);

    /// <summary>
    /// Per arm at its chosen rate over the reported seeds' cells: means with 95% t-intervals over (subject, seed) cells, and
    /// the DINO difference to LoRA and to the base model paired on the same subject and seed (same generation seeds).
    /// </summary>
    public static IReadOnlyList<ArmSummary> Summarize(TableConfig config, IReadOnlyList<CellResult> cells, IReadOnlyDictionary<string, double> chosen)
    {
        var reported = cells.Where(c => config.Seeds.Contains(c.Seed)).ToList();
        CellResult? Find(string arm, double lr, string subject, long seed) =>
            reported.FirstOrDefault(c => c.Arm == arm && (arm == "base" || c.Lr == lr) && c.Subject == subject && c.Seed == seed);
        var rows = new List<ArmSummary>();
        foreach (var arm in new[] { TableArm.Base }.Concat(TableArm.Default(config.Rank)))
        {
            double lr = arm.IsBase ? 0 : chosen.GetValueOrDefault(arm.Name, double.NaN);
            var mine = reported.Where(c => c.Arm == arm.Name && (arm.IsBase || c.Lr == lr)).ToList();
            if (mine.Count == 0) continue;
            List<double> Paired(string other, double otherLr) => mine
                .Select(c => (c, o: Find(other, otherLr, c.Subject, c.Seed))).Where(p => p.o is not null).Select(p => p.c.Dino - p.o!.Dino).ToList();
            rows.Add(new ArmSummary(arm.Name, arm.Budget, arm.Rank, lr, mine.Max(c => c.AdapterParameters), mine.Count,
                ConfidenceIntervals.MeanT(mine.Select(c => c.Dino).ToList()), ConfidenceIntervals.MeanT(mine.Select(c => c.ClipI).ToList()),
                ConfidenceIntervals.MeanT(mine.Select(c => c.ClipT).ToList()), ConfidenceIntervals.MeanT(mine.Select(c => c.JudgeAll).ToList()),
                arm.Name == "lora" || arm.IsBase ? Interval.Empty : ConfidenceIntervals.MeanT(Paired("lora", chosen.GetValueOrDefault("lora", double.NaN))),
                arm.IsBase ? Interval.Empty : ConfidenceIntervals.MeanT(Paired("base", 0))));
        }
        return rows;
    }

    /// <summary>results.md: <paramref name="rows"/> (<see cref="Summarize"/> of the same cells), the ceiling and the learning-rate tuning.</summary>
    public static string Markdown(TableConfig config, IReadOnlyList<CellResult> cells, IReadOnlyList<ArmSummary> rows, IReadOnlyDictionary<string, double> chosen,
                                  CommitInfo commit, string command, IReadOnlyList<ArmSummary>? commonRows = null)
    {
        var real = cells.Where(c => c.Arm == "base" && config.Seeds.Contains(c.Seed)).GroupBy(c => c.Subject).Select(g => g.First()).ToList();
        static string F(Interval i, string fmt = "F3") => double.IsNaN(i.Estimate) ? "–" :
            double.IsNaN(i.Lower) ? i.Estimate.ToString(fmt) : $"{i.Estimate.ToString(fmt)} [{i.Lower.ToString(fmt)}, {i.Upper.ToString(fmt)}]";
        var sb = new StringBuilder();
        sb.AppendLine("# DreamBooth on the toy world: the seeds' table");
        sb.AppendLine();
        sb.AppendLine($"Commit {commit}; `{command}`. Toy-world model, toy evaluators (their numbers compare runs on this world, not with papers).");
        sb.AppendLine($"Each cell: {config.Steps} steps, batch {config.Batch}, 64 px, on the subject's 5 instance images; {ToyDreamBoothPrompts.Templates.Count} protocol prompts × " +
                      $"{config.ImagesPerPrompt} image(s), {config.SamplingSteps} sampling steps, CFG {config.GuidanceScale}; scored against the subject's 12 held-out views.");
        sb.AppendLine($"Learning rates from {{{string.Join(", ", config.Lrs.Select(l => l.ToString("G3")))}}}, chosen per arm on seed {config.TuningSeed} over " +
                      $"{config.TuningSubjects} subject(s) by mean DINO + CLIP-T; reported seeds {{{string.Join(", ", config.Seeds)}}} are separate. " +
                      "Means with 95% t-intervals over (subject, seed) cells; differences paired on subject and seed (same generation seeds).");
        sb.AppendLine();
        void Rows(IReadOnlyList<ArmSummary> these)
        {
            sb.AppendLine("| arm | budget | rank | params | lr | n | DINO | CLIP-I | CLIP-T | judge: all right | DINO − LoRA | DINO − base |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---|---|---|---|---|---|");
            foreach (var r in these)
                sb.AppendLine($"| {r.Arm} | {r.Budget} | {(r.Rank == 0 ? "–" : r.Rank)} | {(r.Parameters == 0 ? "–" : r.Parameters.ToString("N0"))} | {(r.Lr == 0 ? "–" : r.Lr.ToString("G3"))} | {r.N} | " +
                              $"{F(r.Dino)} | {F(r.ClipI)} | {F(r.ClipT)} | {F(r.JudgeAll, "P0")} | {F(r.DinoVsLora, "+0.000;-0.000")} | {F(r.DinoVsBase, "+0.000;-0.000")} |");
        }
        sb.AppendLine("Each arm at its chosen rate:");
        sb.AppendLine();
        Rows(rows);
        if (real.Count > 0)
            sb.AppendLine($"| held-out views (ceiling) | | | | | {real.Count} | {F(ConfidenceIntervals.MeanT(real.Select(c => c.RealDino).ToList()))} | " +
                          $"{F(ConfidenceIntervals.MeanT(real.Select(c => c.RealClipI).ToList()))} | | | | |");
        sb.AppendLine();
        if (commonRows is { Count: > 0 } && config.CommonLr is double common)
        {
            sb.AppendLine($"Every arm at one rate, {common:G3} (the same cells where it is the chosen rate; differences paired as above):");
            sb.AppendLine();
            Rows(commonRows.Where(r => r.Arm != "base").ToList());
            sb.AppendLine();
        }
        sb.AppendLine($"Learning-rate tuning (seed {config.TuningSeed}, {config.TuningSubjects} subjects; the rate with the highest mean DINO + CLIP-T is chosen). " +
                      "DINO and CLIP-T pull apart (fitting the instances raises the first and lowers the second), so the sum is shown with both:");
        sb.AppendLine();
        sb.AppendLine("| arm | lr | n | DINO | CLIP-T | DINO + CLIP-T | judge: all right | chosen |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|:---:|");
        foreach (var arm in TableArm.Default(config.Rank))
            foreach (var lr in config.Lrs)
            {
                var at = cells.Where(c => c.Seed == config.TuningSeed && c.Arm == arm.Name && c.Lr == lr).ToList();
                if (at.Count == 0) continue;
                bool isChosen = chosen.TryGetValue(arm.Name, out var l) && l == lr;
                sb.AppendLine($"| {arm.Name} | {lr:G3} | {at.Count} | {at.Average(c => c.Dino):F3} | {at.Average(c => c.ClipT):F3} | {at.Average(c => c.Dino + c.ClipT):F3} | " +
                              $"{at.Average(c => c.JudgeAll):P0} | {(isChosen ? "✓" : "")} |");
            }
        return sb.ToString();
    }

    public static void Chart(string path, IReadOnlyList<ArmSummary> rows, string subtitle)
    {
        ScottPlot.Plot Panel(string title, Func<ArmSummary, Interval> pick)
        {
            var series = rows.Select((r, i) => new Charts.Series(r.Arm, [((double)i, pick(r))])).ToList();
            var plot = Charts.Panel(title, series, "", title, logX: false, logY: false);
            plot.Axes.Bottom.SetTicks(rows.Select((_, i) => (double)i).ToArray(), rows.Select(r => r.Arm).ToArray());   // arms by name, not by index
            plot.Axes.Bottom.TickLabelStyle.FontSize = 11;
            plot.Axes.SetLimitsX(-0.6, rows.Count - 0.4);
            plot.HideLegend();
            return plot;
        }
        Charts.Grid(path, $"Toy-world DreamBooth ({subtitle}): means and 95% intervals over (subject, seed) cells",
            [Panel("DINO", r => r.Dino), Panel("CLIP-I", r => r.ClipI), Panel("CLIP-T", r => r.ClipT), Panel("judge: all right", r => r.JudgeAll)], 2);
    }
}
