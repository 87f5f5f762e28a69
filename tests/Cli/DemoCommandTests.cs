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
    }
}
