using DiffusionPeft.Cli;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Tests.Golden;

namespace DiffusionPeft.Tests.Cli;

public sealed class EvalRunCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-evalrun-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    [Fact]
    public void ScoresEveryValidationStepAndNamesTheBest()
    {
        var metrics = Path.Combine(GoldenData.Dir, "metrics_tiny");
        var images = Directory.GetFiles(Path.Combine(metrics, "images")).Order().ToArray();
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
            "--dino", Path.Combine(metrics, "dino_tiny.onnx"), "--clip-vision", Path.Combine(metrics, "clip_vision_tiny.onnx"),
            "--clip-text", Path.Combine(metrics, "clip_text_tiny.onnx"), "--clip-tokenizer", Path.Combine(GoldenData.Dir, "clip_tokenizer")], o, e);
        Assert.True(code == 0, e.ToString());
        Assert.Contains("step-000010: DINO", o.ToString());
        Assert.Contains("best by dino: step-000020", o.ToString());
        Assert.True(File.Exists(Path.Combine(run, "eval", "checkpoints.html")));
        Assert.True(File.Exists(Path.Combine(run, "eval", "step-000020", "report.json")));
    }
}
