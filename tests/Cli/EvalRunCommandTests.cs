using DiffusionPeft.Cli;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.Metrics;

namespace DiffusionPeft.Tests.Cli;

public sealed class EvalRunCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-evalrun-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    public static TheoryData<string> MetricsCases => GoldenData.CasesOfKind("metrics");

    [Theory, MemberData(nameof(MetricsCases)), Trait("Category", "Golden")]
    public void ScoresEveryValidationStepAndNamesTheBest(string caseName)
    {
        using var c = new MetricsCase(caseName);
        var images = c.ImageFiles.ToArray();
        Assert.True(images.Length >= 6, $"{caseName}: this test takes 4 of the case's first 6 images, it has {images.Length}");
        var real = Path.Combine(_dir, "subject-photos");
        Directory.CreateDirectory(real);
        foreach (var f in images[..2]) File.Copy(f, Path.Combine(real, Path.GetFileName(f)));
        var run = Path.Combine(_dir, "run");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(run).FullName, "config.yaml"), $"model: x\nimages: {real}\nprompt: a photo of sks dog\n");
        // step 10: unrelated images; step 20: the subject's own photos (DINO near 1).
        void Step(int step, IEnumerable<string> sources)
        {
            var dir = Directory.CreateDirectory(Path.Combine(run, "validation", $"step-{step:D6}")).FullName;
            int k = 0;
            foreach (var f in sources) PngWriter.Write(Path.Combine(dir, $"p0-s{k++}.png"), ImageLoader.Load(f), [("parameters", "a sks dog in the snow\nSteps: 2")]);
        }
        Step(10, images[4..6]);
        Step(20, images[..2]);

        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(["eval-run", run, "--metric", "dino",
            "--dino", c.ModelPath("dino"), "--clip-vision", c.ModelPath("clip_vision"), "--clip-text", c.ModelPath("clip_text"), "--clip-tokenizer", c.TokenizerDir], o, e);
        Assert.True(code == 0, e.ToString());
        Assert.Contains("step-000010: DINO", o.ToString());
        Assert.Contains("best by dino: step-000020", o.ToString());
        Assert.True(File.Exists(Path.Combine(run, "eval", "checkpoints.html")));
        Assert.True(File.Exists(Path.Combine(run, "eval", "step-000020", "report.json")));
    }
}
