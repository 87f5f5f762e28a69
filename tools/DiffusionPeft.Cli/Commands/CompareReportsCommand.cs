using System.CommandLine;
using DiffusionPeft.Metrics;

namespace DiffusionPeft.Cli.Commands;

/// <summary>`dpeft compare-reports`: one HTML page comparing several evaluation runs (adapters, checkpoints).</summary>
public static class CompareReportsCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var reports = new Argument<string[]>("reports") { Description = "report.json files written by dpeft eval.", Arity = ArgumentArity.OneOrMore };
        var outFile = new Option<string>("--out") { Description = "The HTML file to write.", DefaultValueFactory = _ => "compare.html" };
        var command = new Command("compare-reports", "Compare evaluation runs side by side in one HTML report.") { reports, outFile };
        command.SetAction(r =>
        {
            var files = r.GetValue(reports)!;
            foreach (var f in files) if (!File.Exists(f)) throw new FileNotFoundException($"{f}: report not found.");
            HtmlReport.WriteComparison(files, r.GetValue(outFile)!);
            output.WriteLine($"wrote {Path.GetFullPath(r.GetValue(outFile)!)}");
            return 0;
        });
        return command;
    }
}
