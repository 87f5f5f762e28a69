using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Metrics;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Tests.Metrics;

/// <summary>End to end over folders with the golden case's tiny ONNX models, then JSON/CSV/HTML reports rendered in headless Chromium.</summary>
public sealed class FidelityEvaluationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-eval-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    public static TheoryData<string> Cases => GoldenData.CasesOfKind("metrics");

    private (string Manifest, string Generated, string Real, FidelityModels Models) BuildDataset(string caseName)
    {
        using var c = new MetricsCase(caseName);
        var files = c.ImageFiles.ToArray();
        Assert.True(files.Length >= 7, $"{caseName}: this test's plan takes 7 of the case's images, it has {files.Length}");
        var manifest = Path.Combine(_dir, "subjects.csv");
        File.WriteAllText(manifest, "subject,class,kind\ndog,dog,live\nvase,vase,object\nteapot,teapot,object\n");
        string real = Path.Combine(_dir, "real"), gen = Path.Combine(_dir, "generated");
        // dog: 3 real images; vase: 2. Generated: decoded golden images, re-encoded as PNG with their prompt.
        var plan = new[] { ("dog", files[..3], files[3..7]), ("vase", files[4..6], files[..3]) };
        var protocol = new DreamBoothProtocol([new("dog", "dog", SubjectKind.Live), new("vase", "vase", SubjectKind.Object)],
            ["a {0} {1} in the snow", "a red {0} {1}"], ["a {0} {1} in the snow", "a {0} {1} wearing a red hat"]);
        foreach (var (subject, realFiles, genFiles) in plan)
        {
            Directory.CreateDirectory(Path.Combine(real, subject));
            foreach (var f in realFiles) File.Copy(f, Path.Combine(real, subject, Path.GetFileName(f)));
            var prompts = protocol.PromptsFor(protocol.Subject(subject), "sks");
            for (int i = 0; i < genFiles.Length; i++)
            {
                var prompt = prompts[i % prompts.Count];
                var text = i % 2 == 0
                    ? new List<(string, string)> { ("prompt", prompt) }
                    : [("parameters", $"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: DDIM, Seed: {i}")];
                PngWriter.Write(Path.Combine(gen, subject, $"{i:D3}.png"), ImageLoader.Load(genFiles[i]), text);
            }
        }
        // The tokenizer the case's text model was fed with.
        var tokenizer = ClipTokenizer.FromFolder(c.TokenizerDir);
        var models = new FidelityModels(new MetricModelPaths(c.ModelPath("dino"), c.ModelPath("clip_vision"), c.ModelPath("clip_text")),
            text => tokenizer.EncodeForModel(text).InputIds);
        return (manifest, gen, real, models);
    }

    [Theory, MemberData(nameof(Cases)), Trait("Category", "Golden")]
    public void EvaluatesFoldersCachesEmbeddingsAndWritesReports(string caseName)
    {
        var (manifest, gen, real, models) = BuildDataset(caseName);
        var cache = Path.Combine(_dir, "cache");
        var first = FidelityEvaluation.Run(manifest, gen, real, models, new FidelityOptions { Label = "lora", CacheDir = cache, BatchSize = 3 });
        Assert.Equal(["dog", "vase"], first.Scores.PerSubject.Select(s => s.Name));
        Assert.Equal("no generated images in " + Path.Combine(gen, "teapot"), first.Skipped["teapot"]);
        Assert.Equal(7, first.Scores.PerImage.Count);
        Assert.Equal(0, first.Stats!.CacheHits);
        Assert.Equal("a sks dog wearing a red hat", first.Scores.PerImage[1].Prompt); // from the A1111 "parameters" chunk
        Assert.Equal("a {0} {1} wearing a red hat", first.Scores.PerImage[1].PromptKey);
        foreach (var s in first.Scores.PerSubject)
        {
            var imgs = first.Scores.PerImage.Where(i => i.Subject == s.Name).ToList();
            Assert.Equal(imgs.Average(i => i.Dino), s.Dino.Mean, 12);
            Assert.Equal(imgs.Count, s.ClipT.Count);
        }
        // Per image, DINO is the mean over the subject's real images of the cosine with fresh embeddings.
        using (var dino = new DinoEmbedder(models.Paths.Dino))
        {
            var pre = dino.Preprocessor;
            var g = first.Scores.PerImage[0];
            var ge = dino.Embed(pre.Process(ImageLoader.Load(g.Path)), 1)[0];
            var expected = first.RealImages["dog"].Average(r => Similarity.Cosine(ge, dino.Embed(pre.Process(ImageLoader.Load(r)), 1)[0]));
            Assert.Equal(expected, g.Dino, 6);
        }

        var second = FidelityEvaluation.Run(manifest, gen, real, models,
            new FidelityOptions { Label = "lora, identifier removed", CacheDir = cache, ClipTWithoutIdentifier = true });
        Assert.Equal(2 * 12, second.Stats!.CacheHits); // 12 distinct files x (DINO, CLIP)
        Assert.Equal(0, second.Stats.Computed);
        Assert.Equal(first.Scores.PerImage.Select(i => i.Dino), second.Scores.PerImage.Select(i => i.Dino));
        Assert.All(second.Scores.PerImage, i => Assert.DoesNotContain("sks", i.ClipTPrompt));
        Assert.NotEqual(first.Scores.Overall.ClipT.Mean, second.Scores.Overall.ClipT.Mean);

        var outDir = Path.Combine(_dir, "report");
        ReportWriter.WriteAll(first, outDir);
        var back = ReportWriter.ReadJson(Path.Combine(outDir, "report.json"));
        Assert.Equal(first.Scores.Overall.Dino.Mean, back.Scores.Overall.Dino.Mean);
        Assert.Equal(first.Scores.PerImage.Count, back.Scores.PerImage.Count);
        var perSubject = File.ReadAllLines(Path.Combine(outDir, "per_subject.csv"));
        Assert.Equal("label,subject,count,dino_mean,dino_std,clip_i_mean,clip_i_std,clip_t_mean,clip_t_std", perSubject[0]);
        Assert.StartsWith($"lora,dog,4,{first.Scores.PerSubject[0].Dino.Mean.ToString("R", CultureInfo.InvariantCulture)},", perSubject[1]);
        Assert.Equal(8, File.ReadAllLines(Path.Combine(outDir, "per_image.csv")).Length);

        // Comparison page of both runs, rendered by Chromium: the numbers must be in the DOM after the scripts ran.
        var html = Path.Combine(outDir, "compare.html");
        HtmlReport.Write([first, second], html);
        if (Environment.GetEnvironmentVariable("DPEFT_KEEP_REPORT") is { Length: > 0 } keep) File.Copy(html, keep, true);
        var dom = Chromium.DumpDom(html, _dir);
        Assert.Contains("data-ready=\"1\"", dom);
        foreach (var r in new[] { first, second })
        {
            Assert.Contains(HtmlReport.F(r.Scores.Overall.Dino.Mean), dom);
            Assert.Contains(HtmlReport.F(r.Scores.Overall.ClipT.Mean), dom);
            foreach (var s in r.Scores.PerSubject) Assert.Contains(HtmlReport.F(s.ClipI.Mean), dom);
        }
        foreach (var p in first.Scores.PerPrompt) Assert.Contains(HtmlReport.F(p.ClipT.Mean), dom);
        Assert.Contains("aria-sort=\"descending\"", dom);
        // Classes the script adds (the words also occur in the inline CSS/JS, so match the attributes).
        Assert.Contains("<td class=\"num heat\"", dom);
        Assert.Matches("<td class=\"num heat best\" data-metric=\"clip_t\"", dom); // the runs differ only in CLIP-T
        Assert.DoesNotMatch("<td class=\"num heat best\" data-metric=\"dino\"", dom); // ties are not marked
        Assert.Contains("class=\"metric best\" data-run=\"", dom);
        Assert.Equal(5 + 2 * 7, Regex.Matches(dom, "src=\"data:image/jpeg;base64,").Count); // 5 real + 7 generated per run
        // The script sorted the subject table by DINO, best first.
        var table = dom[dom.IndexOf("id=\"table-subjects\"", StringComparison.Ordinal)..];
        var firstRowSubject = Regex.Match(table, "<td class=\"key\">([^<]+)</td>").Groups[1].Value;
        Assert.Equal(first.Scores.PerSubject.MaxBy(s => s.Dino.Mean)!.Name, firstRowSubject);
    }

    [Theory, MemberData(nameof(Cases)), Trait("Category", "Golden")]
    public void RunnerReturnsEachFilesEmbeddingInOrderAcrossBatches(string caseName)
    {
        using var c = new MetricsCase(caseName);
        var files = c.ImageFiles.ToList();
        files.Add(files[0]); // a duplicate in a later batch
        using var dino = new DinoEmbedder(c.ModelPath("dino"));
        using var clip = new ClipImageEmbedder(c.ModelPath("clip_vision"));
        using var dc = EmbeddingCache.Open(null, dino.Identity);
        using var cc = EmbeddingCache.Open(null, clip.Identity);
        var (emb, stats) = new ImageEmbeddingRunner([dino, clip], [dc, cc], batchSize: 2).Embed(files);
        Assert.Equal(files.Count, stats.Images);
        for (int i = 0; i < files.Count; i++)
        {
            var img = ImageLoader.Load(files[i]);
            // Batched equals one at a time (0 difference measured; a small atol guards other CPUs' kernels).
            ArrayAssert.Close(emb[0][i], dino.Embed(dino.Preprocessor.Process(img), 1)[0], 1e-5, 0, $"DINO {files[i]}");
            ArrayAssert.Close(emb[1][i], clip.Embed(clip.Preprocessor.Process(img), 1)[0], 1e-5, 0, $"CLIP {files[i]}");
        }
    }

    [Theory, MemberData(nameof(Cases)), Trait("Category", "Golden")]
    public void MissingPromptsAndEmptyFoldersAreReportedClearly(string caseName)
    {
        var (manifest, gen, real, models) = BuildDataset(caseName);
        var bare = Path.Combine(gen, "dog", "999.png");
        PngWriter.Write(bare, RgbImage.Blank(8, 8));
        var grid = Path.Combine(gen, "dog", ImageGrid.FileName);   // generate's contact sheet: not an image of the subject, not a fault
        PngWriter.Write(grid, RgbImage.Blank(8, 8));
        // An image without a prompt (or one that does not decode) is left out with its reason; the rest is scored.
        var broken = Path.Combine(real, "dog", "broken.jpg");
        File.WriteAllBytes(broken, [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
        var messages = new List<string>();
        var report = FidelityEvaluation.Run(manifest, gen, real, models, new FidelityOptions { Progress = new SyncProgress(messages.Add) });
        Assert.Equal(["dog", "vase"], report.Scores.PerSubject.Select(s => s.Name));
        Assert.Equal(new[] { bare, broken }.Order(StringComparer.Ordinal), report.SkippedImages.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("no prompt", report.SkippedImages[bare]);
        Assert.DoesNotContain(report.Scores.PerImage, i => i.Path == bare || i.Path == grid);
        Assert.Contains(messages, m => m.Contains(broken) && m.StartsWith("skipping"));
        File.Delete(broken);
        File.WriteAllText(Path.ChangeExtension(bare, ".txt"), "a sks dog in the snow\n");
        Assert.Equal("a sks dog in the snow", FidelityEvaluation.PromptOf(bare));
        Assert.Throws<InvalidDataException>(() => FidelityEvaluation.Run(manifest, Path.Combine(_dir, "real"), Path.Combine(_dir, "real"), models,
            new FidelityOptions { Subjects = ["teapot"] }));
    }
}

/// <summary>An IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress(Action<string> report) : IProgress<string>
{
    public void Report(string value) { lock (this) report(value); }
}

/// <summary>Headless Chromium as the platform notes describe it.</summary>
public static class Chromium
{
    public const string Exe = "/usr/bin/chromium";

    private static string Run(string profileDir, params string[] args)
    {
        Assert.True(File.Exists(Exe), $"{Exe} is needed to render the HTML report");
        var psi = new ProcessStartInfo(Exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", $"--user-data-dir={Path.Combine(profileDir, "chromium-profile")}" }.Concat(args))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(90_000)) { p.Kill(true); Assert.Fail("chromium did not finish within 90 s"); }
        Assert.True(p.ExitCode == 0, $"chromium exited with {p.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }

    public static string DumpDom(string htmlPath, string profileDir) =>
        Run(profileDir, "--virtual-time-budget=5000", "--dump-dom", new Uri(htmlPath).AbsoluteUri);

    public static void Screenshot(string htmlPath, string pngPath, string profileDir, int width = 1400, int height = 2200) =>
        Run(profileDir, $"--screenshot={pngPath}", $"--window-size={width},{height}", "--hide-scrollbars", new Uri(htmlPath).AbsoluteUri);
}
