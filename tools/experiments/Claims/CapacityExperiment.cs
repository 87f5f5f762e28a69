using System.Diagnostics;
using System.Text;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// SingLoRA's claim (stable across learning rates at about half the parameters), with capacity that binds and
/// non-square layers. Square 64→64: targets of rank 8 (κ = 10), general and PSD (what SingLoRA expresses on a square
/// layer), adapter ranks below and at the target's; arms LoRA r, SingLoRA r (half LoRA's parameters), SingLoRA 2r (LoRA's
/// parameters). Non-square 64→96 and 96→64 (SingLoRA's extension: A_in = the first d_in rows of
/// A): general targets and SingLoRA-shaped ones (A*_out·A*_inᵀ), rank 4 arms. AdamW, label noise, every grid learning
/// rate on every seed (see <see cref="LrGridComparison"/>). SingLoRA: init scale 0.1, ramp 100 steps (see the settings experiment).
/// </summary>
public static class CapacityExperiment
{
    public const double SingLoraInit = 0.1;
    public const long SingLoraRamp = 100;

    public static ExperimentSection Run(ClaimsConfig c, string outDir, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        var sq = new LayerShape(64, 64);
        var squareConds = new[]
        {
            new GridCondition("64→64 general, rank 8, κ 10", sq, TargetKind.General, 8, 10),
            new GridCondition("64→64 PSD, rank 8, κ 10", sq, TargetKind.Psd, 8, 10),
        };
        var nonSquareConds = new List<GridCondition>();
        foreach (var shape in new[] { new LayerShape(64, 96), new LayerShape(96, 64) })
        {
            nonSquareConds.Add(new GridCondition($"{shape} general, rank 8, κ 10", shape, TargetKind.General, 8, 10));
            nonSquareConds.Add(new GridCondition($"{shape} SingLoRA-shaped, rank 8", shape, TargetKind.SingLoraShaped, 8, 10));
        }
        var pairs = new List<(GridCondition, Arm)>();
        foreach (var cond in squareConds)
            foreach (var r in c.CapacityRanks)
                pairs.AddRange(Family(r).Select(a => (cond, a)));
        foreach (var cond in nonSquareConds) pairs.AddRange(Family(4).Select(a => (cond, a)));
        var (rows, runs) = LrGridComparison.Run(c, pairs, "capacity", log);

        var md = new StringBuilder();
        md.AppendLine($"AdamW, {c.Steps} steps, batch 256, label noise (floor ≈ {Format.Sci(rows[0].Floor)}), α = r. Arms per LoRA rank r: LoRA r; SingLoRA r " +
                      $"(init ×{SingLoraInit}, ramp {SingLoraRamp}); SingLoRA 2r (LoRA's parameter count on square layers). " +
                      $"Learning rate: lowest median final loss on tuning seeds {{{string.Join(", ", c.TuningSeeds)}}}. Report seeds {{{string.Join(", ", c.ReportSeeds)}}}: " +
                      "final loss = geometric mean [95% t-interval on log10] at that LR; steps = median [95% bootstrap interval]; LR counts = mean [95% t-interval] over seeds of " +
                      "how many grid LRs reach 2 × the noise floor, and how many end within 2× of the seed's best LR. Floors: the best rank-r relative squared error " +
                      "(Eckart–Young) and, for SingLoRA on square layers, the best rank-r PSD one; relative loss ≈ floor + noise floor.");
        md.AppendLine();
        GridTables.Markdown(md, c, rows);
        md.AppendLine("![capacity](capacity.png)");
        md.AppendLine();
        md.AppendLine("![learning-rate robustness](lr-robustness.png)");
        md.AppendLine();

        string FamilyName(Arm a) => a.Name.Split(" r")[0] + (a.Name.EndsWith("(2r)") ? " 2r" : " r");
        var capacityPanels = squareConds.Select(cond => Charts.Panel($"{cond.Name}: final loss vs r",
            rows.Where(r => r.Condition == cond).GroupBy(r => FamilyName(r.Arm)).Select(g => new Charts.Series(g.Key,
                g.Select(r => ((double)RankOf(r.Arm), r.Final)).ToList())).ToList(),
            "LoRA rank r (target rank 8)", "final loss (geo-mean, 95% CI)", logX: true, logY: true, cap: 100, xTicks: c.CapacityRanks.Select(x => (double)x).ToList(),
            hLine: rows[0].Floor)).ToList();
        Charts.Grid(Path.Combine(outDir, "capacity.png"), "Rank sweep (target rank 8): final loss at the tuned LR; dashed = noise floor", capacityPanels, 2);

        int mid = c.CapacityRanks.Contains(4) ? 4 : c.CapacityRanks[0];
        var lrPanels = squareConds.Select(cond => GridTables.LrPanel($"{cond.Name}, r = {mid}", c, rows.Where(r => r.Condition == cond && RankOf(r.Arm) == mid)))
            .Concat(nonSquareConds.Select(cond => GridTables.LrPanel(cond.Name, c, rows.Where(r => r.Condition == cond)))).ToList();
        Charts.Grid(Path.Combine(outDir, "lr-robustness.png"), $"Final loss vs AdamW learning rate (seeds {string.Join(",", c.ReportSeeds)}; dashed = noise floor)", lrPanels, 3);

        return new ExperimentSection("capacity", "Capacity, parameter budgets, non-square layers, learning-rate robustness", md.ToString(), GridTables.Json(rows, runs), clock.Elapsed.TotalSeconds);
    }

    /// <summary>The arms at LoRA rank r: LoRA r, SingLoRA r, SingLoRA 2r.</summary>
    public static IReadOnlyList<Arm> Family(int r) =>
    [
        Arm.Lora(r),
        Arm.SingLora(r, SingLoraInit, SingLoraRamp),
        Arm.SingLora(2 * r, SingLoraInit, SingLoraRamp, " (2r)"),
    ];

    /// <summary>The LoRA rank r an arm belongs to (SingLoRA 2r arms have rank 2r).</summary>
    private static int RankOf(Arm a) => a.Name.EndsWith("(2r)") ? a.Options.Rank / 2 : a.Options.Rank;
}
