using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Experiments.ToyShapeIsolation;

namespace DiffusionPeft.Tests.Experiments;

/// <summary>The shape-isolation experiment end to end on a few steps: its data, training run and judged report.</summary>
public sealed class ToyShapeIsolationExperimentTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-shapeiso-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void TrainsOnOneLargeObjectScenesAndJudgesEveryPromptAtBothGuidances()
    {
        int code = ToyShapeIsolationExperiment.RunCommand(
            ["--base", EmbeddedDefaultModel.Folder, "--compare", EmbeddedDefaultModel.Folder, "--out", _dir, "--images", "40", "--steps", "2", "--prompts", "8"], _dir);
        Assert.Equal(0, code);

        var captions = Directory.GetFiles(Path.Combine(_dir, "data"), "*.txt").Select(f => File.ReadAllText(f).Trim()).ToList();
        Assert.Equal(40, captions.Count);
        Assert.All(captions, c => Assert.Matches(@"^a large \w+ \w+ .*, plain \w+ background$", c));   // full captions of the narrowed world

        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "results.json")))!;
        Assert.Equal(2, (int)report["steps"]!);
        Assert.Equal(new DiffusionPeft.ToyModel.ToyModelOptions().UnetLr, (double)report["lr"]!);   // the recipe's UNet rate unless --lr
        foreach (var key in new[] { "isolated cfg 1", "isolated cfg 7.5", "compared cfg 1", "compared cfg 7.5" })
        {
            Assert.Equal(16, (int)report[key]!["n"]!);                                         // 8 prompts × 2 seeds
            double shape = (double)report[key]!["shape"]!;
            var ci = report[key]!["shape_ci"]!.AsArray().Select(v => (double)v!).ToArray();
            Assert.InRange(shape, ci[0], ci[1]);
        }
        // The prompts cycle through the eight shapes, one each.
        var prompts = File.ReadAllLines(Path.Combine(_dir, "samples-isolated-cfg1.txt"));
        Assert.Equal(8, prompts.Length);
        foreach (var shape in new[] { "circle", "square", "triangle", "star", "ring", "cross", "heart", "diamond" })
            Assert.Single(prompts, p => p.Contains($" {shape} "));

        // Its UNet trained on these scenes: a rerun into the same folder asking for others is refused, nothing rewritten.
        var before = File.ReadAllText(Path.Combine(_dir, "data", "done.json"));
        Assert.Equal(2, ToyShapeIsolationExperiment.RunCommand(["--base", EmbeddedDefaultModel.Folder, "--out", _dir, "--images", "40", "--sizes", "small"], _dir));
        Assert.Equal(before, File.ReadAllText(Path.Combine(_dir, "data", "done.json")));
        Assert.Equal(40, Directory.GetFiles(Path.Combine(_dir, "data"), "*.png").Length);
    }

    [Fact]
    public void ItsPromptsAreDistinctHeldOutPlainScenesCyclingThroughTheShapes()
    {
        var prompts = ToyShapeIsolationExperiment.Prompts(48, worldSeed: 0);
        Assert.Equal(48, prompts.Distinct().Count());   // held-out combinations are few: repeats would be drawn without the check
        var world = new DiffusionPeft.ToyWorld.World(0);
        var heldOut = Enumerable.Range(0, 5000).Select(i => world.PlainScene(DiffusionPeft.ToyWorld.World.HeldOutStart + i).FullCaption().ToText()).ToHashSet();
        Assert.All(prompts, p => Assert.Contains(p, heldOut));
        var shapes = new[] { "circle", "square", "triangle", "star", "ring", "cross", "heart", "diamond" };
        for (int i = 0; i < prompts.Count; i++) Assert.Contains($" {shapes[i % 8]} ", prompts[i]);
    }

    [Fact]
    public void OtherSizesNarrowTheWorldToThoseSizes()
    {
        var sizes = new[] { DiffusionPeft.ToyWorld.Grammar.ToySize.Small };
        var prompts = ToyShapeIsolationExperiment.Prompts(16, worldSeed: 0, sizes);
        Assert.All(prompts, p => Assert.StartsWith("a small ", p));
        Assert.Equal(16, prompts.Distinct().Count());
        var error = Assert.Throws<ArgumentException>(() => ToyShapeIsolationExperiment.RunCommand(["--base", _dir, "--sizes", "large,tiny"], _dir));
        Assert.Contains("--sizes takes small, medium and large", error.Message);
    }

    [Fact]
    public void OtherTexturesAndAMaskedLossTrainOnThoseScenesWithTheirMasks()
    {
        var prompts = ToyShapeIsolationExperiment.Prompts(16, worldSeed: 0, textures: [DiffusionPeft.ToyWorld.Grammar.BackgroundTexture.Striped]);
        Assert.All(prompts, p => Assert.Matches(@"^a large \w+ \w+ .*, \w+ striped background$", p));
        Assert.Contains("--textures takes plain, gradient, striped and checked",
            Assert.Throws<ArgumentException>(() => ToyShapeIsolationExperiment.RunCommand(["--base", _dir, "--textures", "plain,dotted"], _dir)).Message);
        Assert.Contains("--masked-loss takes the background's weight in 0..1",
            Assert.Throws<ArgumentException>(() => ToyShapeIsolationExperiment.RunCommand(["--base", _dir, "--masked-loss", "1.5"], _dir)).Message);
        Assert.Contains("--lr takes a positive learning rate",
            Assert.Throws<ArgumentException>(() => ToyShapeIsolationExperiment.RunCommand(["--base", _dir, "--lr", "0"], _dir)).Message);
        Assert.Contains("--captions takes full or training",
            Assert.Throws<ArgumentException>(() => ToyShapeIsolationExperiment.RunCommand(["--base", _dir, "--captions", "partial"], _dir)).Message);

        int code = ToyShapeIsolationExperiment.RunCommand(
            ["--base", EmbeddedDefaultModel.Folder, "--out", _dir, "--images", "16", "--steps", "2", "--prompts", "8", "--textures", "gradient,checked", "--masked-loss", "0.25", "--lr", "2e-3"], _dir);
        Assert.Equal(0, code);
        var data = Path.Combine(_dir, "data");
        var captions = Directory.GetFiles(data, "*.txt").Select(f => File.ReadAllText(f).Trim()).ToList();
        Assert.Equal(16, captions.Count);
        Assert.All(captions, c => Assert.Matches(@"^a large \w+ \w+ .*, \w+ (gradient|checked) background$", c));
        Assert.Equal(16, Directory.GetFiles(data, "*-masklabel.png").Length);
        var done = JsonNode.Parse(File.ReadAllText(Path.Combine(data, "done.json")))!;
        Assert.Equal(("gradient,checked", true), ((string)done["textures"]!, (bool)done["masks"]!));
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "results.json")))!;
        Assert.Equal((0.25, "gradient,checked"), ((double)report["unmasked_weight"]!, (string)report["textures"]!));
        // --lr is the UNet run's learning rate (the recipe's otherwise), recorded in the report and the run's config.
        Assert.Equal(2e-3, (double)report["lr"]!);
        Assert.Contains("lr: 0.002", File.ReadAllLines(Path.Combine(_dir, "unet", "config.yaml")));
        Assert.Equal(16, (int)report["isolated cfg 7.5"]!["n"]!);
        // Shape per texture: every judged image counted under its caption's texture, and the table in results.md.
        var byTexture = report["isolated cfg 7.5"]!["shape_by_texture"]!.AsObject();
        Assert.Equal(["gradient", "checked"], byTexture.Select(kv => kv.Key));
        Assert.Equal(16, byTexture.Sum(kv => (int)kv.Value!["n"]!));
        Assert.Contains("shape on gradient [95% Wilson] (n) | shape on checked", File.ReadAllText(Path.Combine(_dir, "results.md")));
        // The same folder asked for plain scenes is refused: its UNet trained on these.
        Assert.Equal(2, ToyShapeIsolationExperiment.RunCommand(["--base", EmbeddedDefaultModel.Folder, "--out", _dir, "--images", "16"], _dir));
    }

    [Fact]
    public void TrainingCaptionsAreWrittenPartialAndJudgedOnFullOnes()
    {
        var before = ToyShapeIsolationExperiment.Prompts(8, worldSeed: 0);
        int code = ToyShapeIsolationExperiment.RunCommand(
            ["--base", EmbeddedDefaultModel.Folder, "--out", _dir, "--images", "24", "--steps", "1", "--prompts", "8", "--captions", "training"], _dir);
        Assert.Equal(0, code);
        var captions = Directory.GetFiles(Path.Combine(_dir, "data"), "*.txt").Order().Select(f => File.ReadAllText(f).Trim()).ToList();
        var world = new DiffusionPeft.ToyWorld.World(0);
        Assert.Equal(Enumerable.Range(0, 24).Select(k => world.PlainTrainingCaption(k).ToText()), captions);
        Assert.Contains(captions, c => c != world.PlainScene(captions.IndexOf(c)).FullCaption().ToText());
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "results.json")))!;
        Assert.Equal("training", (string)report["captions"]!);
        var judged = File.ReadAllLines(Path.Combine(_dir, "samples-isolated-cfg1.txt")).Select(l => l[(l.IndexOf(": ", StringComparison.Ordinal) + 2)..]);
        Assert.Equal(before, judged);   // the judged prompts stay full
        Assert.Equal("training", (string)JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "data", "done.json")))!["captions"]!);
    }

    [Fact]
    public void AnEvalOnlyProbeJudgesTheSamePromptsWithWordsDroppedBesideTheRunsOwnResults()
    {
        var full = ToyShapeIsolationExperiment.Prompts(8, worldSeed: 0);
        var dropped = ToyShapeIsolationExperiment.Prompts(8, worldSeed: 0, drop: new HashSet<string> { "colour", "position" });
        Assert.Equal(8, dropped.Count);
        for (int i = 0; i < 8; i++)
        {
            var (f, d) = (DiffusionPeft.ToyWorld.Captions.ToyCaption.Parse(full[i]), DiffusionPeft.ToyWorld.Captions.ToyCaption.Parse(dropped[i]));
            Assert.Equal(f with { Main = f.Main with { Colour = null, Position = null } }, d);   // the same scene's caption, two words fewer
        }
        Assert.Contains("--eval-drop takes size, colour, position and background",
            Assert.Throws<ArgumentException>(() => ToyShapeIsolationExperiment.RunCommand(["--base", _dir, "--eval-drop", "shape"], _dir)).Message);
        // Nothing trained yet: an eval-only probe is refused, and writes nothing.
        Assert.Equal(2, ToyShapeIsolationExperiment.RunCommand(["--base", EmbeddedDefaultModel.Folder, "--out", _dir, "--images", "16", "--eval-only"], _dir));
        Assert.False(File.Exists(Path.Combine(_dir, "results.json")));
        Assert.False(Directory.Exists(Path.Combine(_dir, "data")));

        Assert.Equal(0, ToyShapeIsolationExperiment.RunCommand(["--base", EmbeddedDefaultModel.Folder, "--out", _dir, "--images", "16", "--steps", "1", "--prompts", "8"], _dir));
        var own = File.ReadAllText(Path.Combine(_dir, "results.json"));
        var checkpoints = Directory.GetFileSystemEntries(Path.Combine(_dir, "unet", "checkpoints")).Order().ToList();
        Assert.Equal(0, ToyShapeIsolationExperiment.RunCommand(
            ["--base", EmbeddedDefaultModel.Folder, "--out", _dir, "--images", "16", "--steps", "1", "--prompts", "8", "--eval-only", "--eval-drop", "position,colour"], _dir));
        Assert.Equal(own, File.ReadAllText(Path.Combine(_dir, "results.json")));               // the run's own results untouched
        Assert.Equal(checkpoints, Directory.GetFileSystemEntries(Path.Combine(_dir, "unet", "checkpoints")).Order());
        var probe = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "results-no-colour-position.json")))!;
        Assert.Equal(["colour", "position"], probe["eval_dropped"]!.AsArray().Select(v => (string)v!));
        Assert.Null(probe["isolated cfg 7.5"]!["colour"]);                                      // no prompt names a colour: no score, not NaN
        Assert.Equal(16, (int)probe["isolated cfg 7.5"]!["n"]!);
        var judged = File.ReadAllLines(Path.Combine(_dir, "samples-isolated-no-colour-position-cfg1.txt")).Select(l => l[(l.IndexOf(": ", StringComparison.Ordinal) + 2)..]);
        Assert.Equal(dropped, judged);
        Assert.Contains("| isolated | 7.5 |", File.ReadAllText(Path.Combine(_dir, "results-no-colour-position.md")));
    }
}
