using System.Text.RegularExpressions;
using DiffusionPeft.Cli;
using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.Tests.Cli;

/// <summary>`dpeft demo` end to end on the shipped toy-world model and evaluators, cut to a few steps.</summary>
public sealed class DemoCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-demo-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void TrainsGeneratesBeforeAndAfterScoresAndWritesTheReport()
    {
        var outDir = Path.Combine(_dir, "demo");
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(["demo", "--out", outDir, "--steps", "6", "--n", "1", "--method", "lora", "--quiet"], o, e);
        Assert.True(code == 0, e.ToString());

        var report = Path.Combine(outDir, "report.html");
        Assert.Contains($"report: {report}", o.ToString());
        var html = File.ReadAllText(report);
        foreach (var part in new[] { "DINO", "CLIP-I", "CLIP-T", "judge: Shape", "sunny_star" }) Assert.Contains(part, html);

        // One line of scores, base → adapter, each a cosine in [-1, 1].
        var scores = Regex.Match(o.ToString(), @"DINO (\S+) → (\S+), CLIP-I (\S+) → (\S+), CLIP-T (\S+) → (\S+)");
        Assert.True(scores.Success, o.ToString());
        foreach (var g in scores.Groups.Values.Skip(1)) Assert.InRange(double.Parse(g.Value), -1, 1);
        // And the scene judge's shares, base → adapter, percentages.
        var shape = Regex.Match(o.ToString(), @"judge: .*Shape (\d+)% → (\d+)%");
        Assert.True(shape.Success, o.ToString());
        foreach (var g in shape.Groups.Values.Skip(1)) Assert.InRange(int.Parse(g.Value), 0, 100);

        // The same prompts and seeds before and after: as many images each, 64 px, with the prompt in their metadata.
        var before = Directory.GetFiles(Path.Combine(outDir, "generated-base"), "*.png", SearchOption.AllDirectories).Where(f => !f.EndsWith("grid.png")).Order().ToList();
        var after = Directory.GetFiles(Path.Combine(outDir, "generated"), "*.png", SearchOption.AllDirectories).Where(f => !f.EndsWith("grid.png")).Order().ToList();
        Assert.Equal(24, before.Count);
        Assert.Equal(before.Select(Path.GetFileName), after.Select(Path.GetFileName));
        Assert.Equal((64, 64), (ImageLoader.Load(after[0]).Width, ImageLoader.Load(after[0]).Height));
        Assert.Contains("sks star", PngText.Get(PngText.Read(after[0]), "parameters"));
        Assert.True(File.Exists(Path.Combine(outDir, "run", "adapter.safetensors")));

        // More steps train the adapter on: its old images move aside and are made again; the base's are kept.
        var baseImage = File.ReadAllBytes(before[0]);
        o = new StringWriter(); e = new StringWriter();
        code = Program.Run(["demo", "--out", outDir, "--steps", "8", "--n", "1", "--method", "lora", "--quiet"], o, e);
        Assert.True(code == 0, e.ToString());
        Assert.Contains("generated/ holds images of another adapter or sampling: moved to generated.stale-1/", e.ToString());
        Assert.False(Directory.Exists(Path.Combine(outDir, "generated-base.stale-1")));
        Assert.Equal(baseImage, File.ReadAllBytes(before[0]));
        Assert.Equal(after.Select(Path.GetFileName), Directory.GetFiles(Path.Combine(outDir, "generated"), "*.png", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith("grid.png")).Order().Select(Path.GetFileName));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(outDir, "generated.stale-1", Path.GetRelativePath(Path.Combine(outDir, "generated"), after[0]))),
            File.ReadAllBytes(after[0]));
        Assert.Contains("8 steps", File.ReadAllText(report));
    }

    [Theory]
    [InlineData("--n", "0", "--n must be at least 1 (got 0)")]
    [InlineData("--subject", "bogus", "'bogus' is not a toy-world subject")]
    [InlineData("--rank", "0", "rank")]
    public void BadInputIsRefusedBeforeAnythingIsWritten(string option, string value, string message)
    {
        var outDir = Path.Combine(_dir, "demo");
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(["demo", "--out", outDir, option, value, "--quiet"], o, e);
        Assert.Equal(2, code);
        Assert.Contains(message, e.ToString());
        Assert.False(Directory.Exists(outDir));
    }
}
