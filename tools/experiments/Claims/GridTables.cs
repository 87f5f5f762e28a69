using System.Text;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>The markdown table and JSON of <see cref="LrGridComparison"/> rows.</summary>
public static class GridTables
{
    public static void Markdown(StringBuilder md, ClaimsConfig c, IEnumerable<LrGridComparison.Row> rows)
    {
        md.AppendLine($"| condition | arm | params | rank-r floor | PSD floor | LR | final loss | steps to 2×floor | LRs reaching 2×floor (of {c.AdamWLrs.Length}) | LRs within 2× of own best | final loss per LR ({string.Join(", ", c.AdamWLrs.Select(Format.Lr))}) |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in rows)
        {
            string final = r.Diverged > 0 ? $"diverged {r.Diverged}/{r.Final.N}" : Format.SciInterval(r.Final);
            md.AppendLine($"| {r.Condition.Name} | {r.Arm.Name} | {r.Parameters:N0} | {Format.Sci(r.RankFloor)} | {Format.Sci(r.PsdFloor)} | {Format.Lr(r.ChosenLr)} | {final} | " +
                          $"{Format.Steps(r.Steps, c.Steps)} | {Format.NumInterval(r.LrsSolved, "0.0")} | {Format.NumInterval(r.LrsNearBest, "0.0")} | " +
                          $"{string.Join(" · ", r.PerLr.Select(p => Format.Sci(p.Final.Estimate)))} |");
        }
        md.AppendLine();
    }

    public static object Json(IEnumerable<LrGridComparison.Row> rows, IEnumerable<LrGridComparison.Result> runs) => new
    {
        summary = rows.Select(r => new
        {
            condition = r.Condition.Name, shape = r.Condition.Shape.ToString(), kind = r.Condition.Kind.ToString(), targetRank = r.Condition.TargetRank, targetKappa = r.Condition.Kappa,
            arm = r.Arm.Name, method = r.Arm.Options.Method.ToString(), rank = r.Arm.Options.Rank, initScale = r.Arm.Options.InitScale, rampSteps = r.Arm.Options.RampSteps,
            parameters = r.Parameters, rankFloor = Format.Json(r.RankFloor), psdFloor = Format.Json(r.PsdFloor), noiseFloor = r.Floor,
            lr = r.ChosenLr, finalLoss = Format.JsonInterval(r.Final), stepsToThreshold = Format.JsonInterval(r.Steps), diverged = r.Diverged,
            lrsSolved = Format.JsonInterval(r.LrsSolved), lrsWithin2xOfBest = Format.JsonInterval(r.LrsNearBest),
            perLr = r.PerLr.Select(p => new { lr = p.Lr, finalLoss = Format.JsonInterval(p.Final) }),
        }),
        runs = runs.Select(r => new
        {
            condition = r.Job.Condition.Name, arm = r.Job.Arm.Name, lr = r.Job.Lr, seed = r.Job.Seed, tuning = r.Job.Tuning,
            steps = r.Outcome.StepsToThreshold, final = Format.Json(r.Outcome.Final), diverged = r.Outcome.Diverged, seconds = Math.Round(r.Outcome.Seconds, 3),
        }),
    };

    /// <summary>Final loss vs learning rate (geo-mean over report seeds, 95% CI) of the given rows, one series per arm.</summary>
    public static ScottPlot.Plot LrPanel(string title, ClaimsConfig c, IEnumerable<LrGridComparison.Row> rows, Func<LrGridComparison.Row, string>? name = null) =>
        Charts.Panel(title, rows.Select(r => new Charts.Series(name?.Invoke(r) ?? r.Arm.Name, r.PerLr.Select(p => (p.Lr, p.Final)).ToList())).ToList(),
            "AdamW learning rate", "final loss (geo-mean, 95% CI)", logX: true, logY: true, cap: 100, xTicks: c.AdamWLrs, hLine: rows.First().Floor);
}
