using System.Text.Json;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Experiments.Claims;
using DiffusionPeft.Metrics;
using TorchSharp;

namespace DiffusionPeft.Experiments.DreamBoothTable;

/// <summary>`experiments dreambooth`: runs (or continues) the table, then writes results.md, results.json and the chart.</summary>
public static class DreamBoothTableCommand
{
    public static int Run(string[] args, string repoRoot)
    {
        var config = args.Contains("--quick") ? TableConfig.Quick : new TableConfig();
        string? outDir = null;
        string model = EmbeddedDefaultModel.Keyword, evaluators = ToyEvaluatorFiles.ShippedFolder;
        bool summarizeOnly = false;
        int threads = 1;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--quick": break;
                case "--summarize": summarizeOnly = true; break;
                case "--out": outDir = Next(); break;
                case "--model": model = Next(); break;
                case "--evaluators": evaluators = Next(); break;
                case "--threads": threads = int.Parse(Next()); break;
                case "--steps": config = config with { Steps = int.Parse(Next()) }; break;
                case "--seeds": config = config with { Seeds = Next().Split(',').Select(long.Parse).ToList() }; break;
                case "--subjects": config = config with { Subjects = Next().Split(',', StringSplitOptions.RemoveEmptyEntries).ToList() }; break;
                case "--common-lr": { var v = Next(); config = config with { CommonLr = v == "none" ? null : double.Parse(v) }; break; }
                case "--lrs": config = config with { Lrs = Next().Split(',').Select(double.Parse).ToList() }; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        outDir ??= Path.Combine(repoRoot, "runs", "dreambooth-table" + (config.Name == "full" ? "" : "-" + config.Name));
        var docs = Path.Combine(repoRoot, "docs", "experiments", "dreambooth-toy" + (config.Name == "full" ? "" : "-" + config.Name));
        Directory.CreateDirectory(outDir);
        Directory.CreateDirectory(docs);
        torch.set_num_threads(threads);
        var commit = CommitInfo.Read(repoRoot);
        var command = "experiments dreambooth " + string.Join(' ', args);
        Console.WriteLine($"commit {commit}; cells in {outDir}; table in {docs}");
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); Console.Error.WriteLine("stopping after this cell's step; rerun to continue"); };
        if (!summarizeOnly)
        {
            try { ToyDreamBoothTable.Run(config, outDir, model, evaluators, Console.Out, cancel.Token); }
            catch (OperationCanceledException) { Console.Error.WriteLine("interrupted: rerun the same command to continue"); }
        }

        var cells = ToyDreamBoothTable.Load(outDir);
        var chosenPath = Path.Combine(outDir, "chosen-lr.json");
        var chosen = File.Exists(chosenPath) ? JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(chosenPath))! : [];
        var rows = ToyDreamBoothTable.Summarize(config, cells, chosen);
        var commonRows = ToyDreamBoothTable.Summarize(config, cells, ToyDreamBoothTable.CommonRates(config));
        AtomicFile.WriteAllText(Path.Combine(docs, "results.md"), ToyDreamBoothTable.Markdown(config, cells, rows, chosen, commit, command, commonRows));
        AtomicFile.WriteAllText(Path.Combine(docs, "results.json"), JsonSerializer.Serialize(new
        {
            commit = commit.ToString(), command, config, chosen_lr = chosen, summary = rows, summary_common_lr = commonRows, cells,
        }, TableCell.Json));
        if (rows.Count > 0) ToyDreamBoothTable.Chart(Path.Combine(docs, "scores.png"), rows, "each arm at its chosen rate");
        if (commonRows.Count > 1) ToyDreamBoothTable.Chart(Path.Combine(docs, "scores-common-lr.png"), commonRows, $"every arm at {config.CommonLr:G3}");
        Console.WriteLine($"{cells.Count} cells; wrote {docs}");
        return 0;
    }
}
