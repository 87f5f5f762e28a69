using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Experiments.DreamBoothTable;

namespace DiffusionPeft.Tests.Experiments;

public sealed class DreamBoothTableTests
{
    private static CellResult Cell(string arm, double lr, string subject, long seed, double dino) => new()
    {
        Arm = arm, Lr = lr, Subject = subject, Seed = seed, Dino = dino, ClipI = dino / 2, ClipT = 0.2, RealDino = 0.9, RealClipI = 0.8,
        JudgeAll = 0.5, Seconds = 1, AdapterParameters = arm == "base" ? 0 : 1000,
    };

    [Fact]
    public void SummaryUsesTheChosenRateOnReportedSeedsOnlyAndPairsDifferencesOnSubjectAndSeed()
    {
        var config = new TableConfig { Seeds = [0, 1], TuningSeed = 100 };
        var cells = new List<CellResult>();
        double[] baseDino = [0.50, 0.60, 0.55, 0.65];
        int k = 0;
        foreach (var seed in new long[] { 0, 1 })
            foreach (var s in new[] { "a", "b" })
            {
                double b = baseDino[k++];
                cells.Add(Cell("base", 0, s, seed, b));
                cells.Add(Cell("lora", 1e-3, s, seed, b + 0.10));
                cells.Add(Cell("lora", 3e-3, s, seed, 0.99));              // not the chosen rate: ignored
                cells.Add(Cell("singlora", 1e-3, s, seed, b + 0.12 + 0.01 * k));
            }
        cells.Add(Cell("lora", 1e-3, "a", 100, 0.0));                       // the tuning seed: ignored
        var chosen = new Dictionary<string, double> { ["lora"] = 1e-3, ["singlora"] = 1e-3 };

        var rows = ToyDreamBoothTable.Summarize(config, cells, chosen).ToDictionary(r => r.Arm);
        Assert.Equal(4, rows["lora"].N);
        Assert.Equal(baseDino.Average() + 0.10, rows["lora"].Dino.Estimate, 12);
        Assert.Equal(0.10, rows["lora"].DinoVsBase.Estimate, 12);
        Assert.Equal(0, rows["lora"].DinoVsBase.Upper - rows["lora"].DinoVsBase.Lower, 9);   // a constant difference has no spread
        // SingLoRA − LoRA on the same (subject, seed): 0.02 + 0.01·k for k = 1..4.
        Assert.Equal(0.02 + 0.025, rows["singlora"].DinoVsLora.Estimate, 12);
        double sd = Math.Sqrt(new[] { 0.01, 0.02, 0.03, 0.04 }.Select(x => (x - 0.025) * (x - 0.025)).Sum() / 3);
        Assert.Equal(0.045 - 3.182 * sd / 2, rows["singlora"].DinoVsLora.Lower, 9);
        Assert.True(double.IsNaN(rows["base"].DinoVsBase.Estimate));

        // Every arm at the common rate (3e-3): LoRA's other cells, paired with the base; SingLoRA has none there.
        var common = ToyDreamBoothTable.Summarize(config, cells, ToyDreamBoothTable.CommonRates(config)).ToDictionary(r => r.Arm);
        Assert.Equal(0.99, common["lora"].Dino.Estimate, 12);
        Assert.Equal(0.99 - baseDino.Average(), common["lora"].DinoVsBase.Estimate, 12);
        Assert.False(common.ContainsKey("singlora"));

        var md = ToyDreamBoothTable.Markdown(config, cells, ToyDreamBoothTable.Summarize(config, cells, chosen), chosen,
            new DiffusionPeft.Experiments.Claims.CommitInfo("abc", false, []), "experiments dreambooth", common.Values.ToList());
        Assert.Contains("Every arm at one rate, 0.003", md);
        Assert.Contains("| lora | ", md);
        Assert.Contains("held-out views (ceiling)", md);
        Assert.Contains("abc", md);
        // The tuning row shows DINO and CLIP-T apart and marks the chosen rate.
        Assert.Contains("| lora | 0.001 | 1 | 0.000 | 0.200 | 0.200 | 50 % | ✓ |", md);
    }

    [Fact]
    public void ATableFolderStaysWithTheModelItsCellsWereMadeWith()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"dpeft-table-stamp-{Guid.NewGuid():N}");
        try
        {
            using var model = EmbeddedDefaultModel.CreateUntrained();
            ToyDreamBoothTable.CheckSameModel(dir, model);
            var stamp = Path.Combine(dir, ToyDreamBoothTable.ModelStampFile);
            Assert.Contains(model.Name, File.ReadAllText(stamp));
            ToyDreamBoothTable.CheckSameModel(dir, model);   // the same model continues

            File.WriteAllText(stamp, """{"Name":"other-model","Sha256":"0123456789abcdef"}""");
            var e = Assert.Throws<InvalidOperationException>(() => ToyDreamBoothTable.CheckSameModel(dir, model));
            Assert.Contains(stamp, e.Message);
            Assert.Contains("other-model (0123456789)", e.Message);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
