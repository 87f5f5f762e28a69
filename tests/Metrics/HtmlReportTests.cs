using DiffusionPeft.Metrics;

namespace DiffusionPeft.Tests.Metrics;

public sealed class HtmlReportTests
{
    /// <summary>A protocol-sized synthetic comparison: 30 subjects x 25 prompts x 4 images, three runs, no image files.</summary>
    internal static List<FidelityReport> SyntheticRuns()
    {
        var protocol = DreamBoothProtocol.Load(Path.Combine(Golden.GoldenData.RepoRoot(), "prompts"));
        var runs = new List<FidelityReport>();
        foreach (var (label, shift) in new[] { ("LoRA r4", 0.0f), ("DoRA r4", 0.05f), ("SingLoRA r4", 0.1f) })
        {
            var rng = new Random(42);
            float[] Vec(float bias) => Enumerable.Range(0, 8).Select(i => (float)rng.NextDouble() + (i == 0 ? bias : 0)).ToArray();
            var subjects = protocol.Subjects.Select(s => new SubjectEmbeddings(s.Folder, ["r0.jpg", "r1.jpg", "r2.jpg"],
                [Vec(2), Vec(2), Vec(2)], [Vec(1), Vec(1), Vec(1)],
                protocol.PromptsFor(s, "sks").SelectMany((p, k) => Enumerable.Range(0, 4).Select(i => new GeneratedEmbeddings(
                    $"{s.Folder}/{k:D2}_{i}.png", p, protocol.TemplatesFor(s)[k], p, Vec(2 * shift * 10), Vec(shift * 10), Vec(shift * 10)))).ToList())).ToList();
            var scores = FidelityScorer.Score(subjects);
            runs.Add(new FidelityReport
            {
                Label = label, CreatedUtc = new DateTime(2026, 11, 22, 17, 0, 0, DateTimeKind.Utc), GeneratedDir = $"/runs/{label}", RealDir = "/data/dreambooth",
                Identifier = "sks", ClipTWithoutIdentifier = false, Models = [new("dino", "dino.onnx", "abc"), new("clip_vision", "clip.onnx", "def"), new("clip_text", "text.onnx", "123")],
                Scores = scores, RealVsReal = FidelityScorer.RealVsReal(subjects),
                RealImages = subjects.ToDictionary(s => s.Subject, s => s.RealPaths), Skipped = new Dictionary<string, string>(),
            });
        }
        return runs;
    }

    [Fact]
    public void ComparisonOfProtocolSizedRunsListsEverySubjectPromptAndRun()
    {
        var runs = SyntheticRuns();
        var html = HtmlReport.Render(runs, new HtmlReportOptions());
        Assert.Equal(3000, runs[0].Scores.PerImage.Count);
        Assert.Equal(30, runs[0].Scores.PerSubject.Count);
        Assert.Equal(25 + 25 - 15, runs[0].Scores.PerPrompt.Count); // 15 templates (10 scenes, 5 property changes) are shared by both kinds
        foreach (var r in runs)
        {
            Assert.Contains(r.Label, html);
            Assert.Contains(HtmlReport.F(r.Scores.Overall.Dino.Mean), html);
            foreach (var s in r.Scores.PerSubject) Assert.Contains($"data-v=\"{ReportWriter.Num(s.ClipT.Mean)}\"", html);
        }
        Assert.Equal(30, html.Split("<details class=\"subject\"").Length - 1);
        Assert.Contains("no preview", html); // the synthetic paths do not exist
        if (Environment.GetEnvironmentVariable("DPEFT_KEEP_REPORT") is { Length: > 0 } keep) File.WriteAllText(keep + ".synthetic.html", html);
    }

    [Fact]
    public void ComparisonFromSavedJsonEqualsTheInMemoryOne()
    {
        var runs = SyntheticRuns();
        var dir = Directory.CreateTempSubdirectory("dpeft-html-").FullName;
        try
        {
            var paths = runs.Select((r, i) => Path.Combine(dir, $"run{i}.json")).ToList();
            for (int i = 0; i < runs.Count; i++) ReportWriter.WriteJson(runs[i], paths[i]);
            var html = Path.Combine(dir, "compare.html");
            HtmlReport.WriteComparison(paths, html);
            Assert.Equal(HtmlReport.Render(runs, new HtmlReportOptions()), File.ReadAllText(html));
        }
        finally { Directory.Delete(dir, true); }
    }
}
