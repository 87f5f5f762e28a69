using System.Diagnostics;
using System.Text;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// SingLoRA's init scale and ramp, for the defaults: init ×{1, 0.1, 0.01} (of the kaiming bound 1/√r) × ramp T ∈ {0, 100}
/// steps, on targets SingLoRA can express (64→64 PSD, 64→96 SingLoRA-shaped; rank 4, κ 10), rank 4, AdamW grid.
/// </summary>
public static class SingLoraSettingsExperiment
{
    public static readonly double[] InitScales = [1, 0.1, 0.01];
    public static readonly long[] Ramps = [0, 100];

    public static ExperimentSection Run(ClaimsConfig c, string outDir, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        var conds = new[]
        {
            new GridCondition("64→64 PSD, rank 4, κ 10", new LayerShape(64, 64), TargetKind.Psd, 4, 10),
            new GridCondition("64→96 SingLoRA-shaped, rank 4", new LayerShape(64, 96), TargetKind.SingLoraShaped, 4, 10),
        };
        var arms = (from init in InitScales from ramp in Ramps select Arm.SingLora(4, init, ramp, $" init×{init:0.##} ramp {ramp}")).ToList();
        var pairs = (from cond in conds from a in arms select (cond, a)).ToList();
        var (rows, runs) = LrGridComparison.Run(c, pairs, "SingLoRA settings", log);

        var md = new StringBuilder();
        md.AppendLine($"SingLoRA rank 4, α = r, AdamW, {c.Steps} steps, label noise; same statistics as the capacity table.");
        md.AppendLine();
        GridTables.Markdown(md, c, rows);
        md.AppendLine("![SingLoRA settings](singlora-settings.png)");
        md.AppendLine();
        var panels = conds.Select(cond => GridTables.LrPanel(cond.Name, c, rows.Where(r => r.Condition == cond), r => r.Arm.Name.Replace("SingLoRA r4 ", ""))).ToList();
        Charts.Grid(Path.Combine(outDir, "singlora-settings.png"), $"SingLoRA init scale × ramp: final loss vs AdamW LR (seeds {string.Join(",", c.ReportSeeds)})", panels, 2);
        return new ExperimentSection("singloraSettings", "SingLoRA init scale and ramp", md.ToString(), GridTables.Json(rows, runs), clock.Elapsed.TotalSeconds);
    }
}
