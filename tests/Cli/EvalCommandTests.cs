using DiffusionPeft.Cli;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.Metrics;

namespace DiffusionPeft.Tests.Cli;

/// <summary>`dpeft eval` over folders with the golden tiny ONNX models and the golden CLIP vocabulary.</summary>
public sealed class EvalCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-evalcli-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    public static TheoryData<string> MetricsCases => GoldenData.CasesOfKind("metrics");

    [Theory, MemberData(nameof(MetricsCases)), Trait("Category", "Golden")]
    public void ScoresFoldersAndWritesReports(string caseName)
    {
        using var c = new MetricsCase(caseName);
        var images = c.ImageFiles.ToArray();
        Assert.True(images.Length >= 6, $"{caseName}: this test takes 6 of the case's images, it has {images.Length}");
        Directory.CreateDirectory(Path.Combine(_dir, "real", "dog"));
        Directory.CreateDirectory(Path.Combine(_dir, "gen", "dog"));
        foreach (var f in images[..3]) File.Copy(f, Path.Combine(_dir, "real", "dog", Path.GetFileName(f)));
        for (int i = 3; i < 6; i++)
            PngWriter.Write(Path.Combine(_dir, "gen", "dog", $"{i}.png"), ImageLoader.Load(images[i]),
                [("parameters", $"a sks dog in the snow\nSteps: 2, Seed: {i}")]);
        var subjects = Path.Combine(_dir, "subjects.csv");
        File.WriteAllText(subjects, "subject,class,kind\ndog,dog,live\n");
        var outDir = Path.Combine(_dir, "eval");

        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(["eval", "--subjects", subjects, "--generated", Path.Combine(_dir, "gen"), "--real", Path.Combine(_dir, "real"),
            "--dino", c.ModelPath("dino"), "--clip-vision", c.ModelPath("clip_vision"), "--clip-text", c.ModelPath("clip_text"), "--clip-tokenizer", c.TokenizerDir,
            "--out", outDir, "--label", "tiny"], o, e);
        Assert.True(code == 0, e.ToString());
        Assert.Matches(@"tiny: DINO -?0\.\d{4} ± \d\.\d{4} \(n=3\)  CLIP-I -?0\.\d{4} ± \d\.\d{4} \(n=3\)  CLIP-T -?0\.\d{4} ± \d\.\d{4} \(n=3\)", o.ToString());
        foreach (var f in new[] { "report.json", "report.html" }) Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        Assert.NotEmpty(Directory.GetFiles(outDir, "*.csv"));
    }

    [Fact]
    public void MissingModelIsAClearError()
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(["eval", "--generated", _dir, "--real", _dir, "--dino", "/nope/dino.onnx", "--clip-vision", "/nope/v.onnx",
            "--clip-text", "/nope/t.onnx", "--clip-tokenizer", _dir], o, e);
        Assert.NotEqual(0, code);
        Assert.Contains("/nope/dino.onnx: ONNX model not found", e.ToString());
    }
}
