using DiffusionPeft.Cli;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.Metrics;

namespace DiffusionPeft.Tests.Cli;

/// <summary>`dpeft bench-dreambooth` as a smoke test: embedded model, 1 image per prompt, tiny ONNX metric models.</summary>
public sealed class BenchDreamBoothCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-bench-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    public static TheoryData<string> MetricsCases => GoldenData.CasesOfKind("metrics");

    [Theory, MemberData(nameof(MetricsCases)), Trait("Category", "Golden")]
    public void GeneratesTheProtocolPromptsPerShardThenScoresThem(string caseName)
    {
        using var c = new MetricsCase(caseName);
        var images = c.ImageFiles.ToArray();
        Assert.True(images.Length >= 2, $"{caseName}: this test takes 2 of the case's images, it has {images.Length}");
        foreach (var subject in new[] { "dog", "vase" })
        {
            Directory.CreateDirectory(Path.Combine(_dir, "real", subject));
            foreach (var f in images[..2]) File.Copy(f, Path.Combine(_dir, "real", subject, Path.GetFileName(f)));
        }
        var outDir = Path.Combine(_dir, "bench");
        string[] gen = ["bench-dreambooth", "--subject", "dog", "--subject", "vase", "--n", "1", "--steps", "1", "--sampler", "ddim", "--out", outDir, "--quiet"];
        var o = new StringWriter(); var e = new StringWriter();
        Assert.Equal(0, Program.Run([.. gen, "--shard", "2/2"], o, e));
        // Shard 2 of 2 takes the second subject only: the protocol's 25 object prompts, one image each.
        Assert.False(Directory.Exists(Path.Combine(outDir, "generated", "dog")));
        var vase = Directory.GetFiles(Path.Combine(outDir, "generated", "vase"), "*.png", SearchOption.AllDirectories).Where(f => !f.EndsWith("grid.png")).ToArray();
        Assert.Equal(25, vase.Length);
        Assert.Contains(vase, f => PngText.Get(PngText.Read(f), "parameters")!.StartsWith("a sks vase with the Eiffel Tower in the background\n"));

        o = new StringWriter(); e = new StringWriter();
        int code = Program.Run([.. gen, "--shard", "1/2"], o, e);
        Assert.True(code == 0, e.ToString());
        Assert.Equal(25, Directory.GetFiles(Path.Combine(outDir, "generated", "dog"), "*.png", SearchOption.AllDirectories).Count(f => !f.EndsWith("grid.png")));
        Assert.Contains(Directory.GetFiles(Path.Combine(outDir, "generated", "dog"), "*.png", SearchOption.AllDirectories),
            f => !f.EndsWith("grid.png") && PngText.Get(PngText.Read(f), "parameters")!.StartsWith("a sks dog wearing a santa hat\n"));

        o = new StringWriter(); e = new StringWriter();
        code = Program.Run(["bench-dreambooth", "--subject", "dog", "--subject", "vase", "--score-only", "--out", outDir, "--real", Path.Combine(_dir, "real"),
            "--dino", c.ModelPath("dino"), "--clip-vision", c.ModelPath("clip_vision"), "--clip-text", c.ModelPath("clip_text"), "--clip-tokenizer", c.TokenizerDir,
            "--label", "smoke"], o, e);
        Assert.True(code == 0, e.ToString());
        Assert.Matches(@"smoke: DINO -?\d\.\d{4}  CLIP-I -?\d\.\d{4}  CLIP-T -?\d\.\d{4}", o.ToString());
        Assert.True(File.Exists(Path.Combine(outDir, "eval", "report.html")));
    }
}
