using System.Text.Json.Nodes;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld.Judge;

namespace DiffusionPeft.Tests.ToyModel;

/// <summary>dpeft toy-model compare: two evaluations paired by prompt and seed, McNemar's exact test per attribute.</summary>
public sealed class ToyModelComparisonTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-compare-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData(56, 21, 8.215921903007379e-05)]   // runs/toy16 vs toy12's position (scipy.stats.binomtest(21, 77).pvalue)
    [InlineData(0, 5, 0.0625)]
    [InlineData(7, 3, 0.34375)]
    [InlineData(3000, 2900, 0.1974390248435765)]   // thousands of pairs: no underflow
    [InlineData(10, 10, 1.0)]
    [InlineData(0, 0, 1.0)]
    public void McNemarsExactPIsTheTwoSidedBinomialTail(int aOnly, int bOnly, double expected)
    {
        double p = ToyModelComparison.McNemarExact(aOnly, bOnly);
        Assert.True(Math.Abs(p - expected) <= 1e-9 * expected, $"p {p:R}, expected {expected:R}");
        Assert.Equal(ToyModelComparison.McNemarExact(aOnly, bOnly), ToyModelComparison.McNemarExact(bOnly, aOnly), 12);
    }

    private static JsonObject Evaluation(params (string Prompt, long Seed, bool? Colour, bool? Shape)[] images) => new()
    {
        ["images"] = new JsonArray(images.Select(i => (JsonNode)new JsonObject
        {
            ["prompt"] = i.Prompt, ["seed"] = i.Seed,
            ["results"] = new JsonObject { ["Colour"] = i.Colour, ["Shape"] = i.Shape },
        }).ToArray()),
    };

    [Fact]
    public void ImagesArePairedByPromptAndSeedAndOnlyTheDiscordantOnesCount()
    {
        var a = Evaluation(("a red circle", 0, true, true), ("a red circle", 1, true, false), ("a blue star", 2, false, null), ("only in a", 3, true, true));
        var b = Evaluation(("a blue star", 2, true, true), ("a red circle", 1, false, true), ("a red circle", 0, true, false), ("only in b", 9, false, false));
        var r = ToyModelComparison.Compare(a, b);
        Assert.Equal((3, 4, 4), (r.PairedImages, r.AImages, r.BImages));
        var colour = r.Rows.Single(x => x.Attribute == JudgeAttribute.Colour);
        Assert.Equal((3, 1, 1), (colour.Pairs, colour.AOnly, colour.BOnly));
        Assert.Equal(200.0 / 3, colour.APercent, 9);
        Assert.Equal(200.0 / 3, colour.BPercent, 9);
        Assert.Equal(1.0, colour.P);
        var shape = r.Rows.Single(x => x.Attribute == JudgeAttribute.Shape);    // the blue star has no shape verdict in A: 2 pairs
        Assert.Equal((2, 1, 1), (shape.Pairs, shape.AOnly, shape.BOnly));
        Assert.DoesNotContain(r.Rows, x => x.Attribute == JudgeAttribute.Position);   // judged in neither

        Assert.Contains("share no image", Assert.Throws<InvalidDataException>(() => ToyModelComparison.Compare(a, Evaluation(("x", 5, true, true)))).Message);
        Assert.Contains("no \"images\" list", Assert.Throws<InvalidDataException>(() => ToyModelComparison.Compare(new JsonObject(), b, "old.json")).Message);
    }

    [Fact]
    public void TheCommandReadsFoldersOrFilesAndWritesTheTable()
    {
        var left = Directory.CreateDirectory(Path.Combine(_dir, "eval-a")).FullName;
        File.WriteAllText(Path.Combine(left, "evaluation.json"), Evaluation(("p", 0, true, true), ("p", 1, true, true), ("q", 0, true, false)).ToJsonString());
        var right = Path.Combine(_dir, "b.json");
        File.WriteAllText(right, Evaluation(("p", 0, false, true), ("p", 1, false, true), ("q", 0, false, false)).ToJsonString());
        var md = Path.Combine(_dir, "compare.md");
        var (code, output, err) = Dpeft("toy-model", "compare", left, right, "--out", md);
        Assert.True(code == 0, err);
        Assert.Contains("| Colour | 3 | 100.0% | 0.0% | 3 | 0 | 0.25 |", output);
        Assert.Equal(output, File.ReadAllText(md));

        var missing = Dpeft("toy-model", "compare", left, Path.Combine(_dir, "nope"));
        Assert.Equal(2, missing.Code);
        Assert.Contains("nope: no such evaluation", missing.Err);
        File.WriteAllText(right, "{ not json");
        var broken = Dpeft("toy-model", "compare", left, right);
        Assert.Equal(2, broken.Code);
        Assert.Contains("b.json: not JSON", broken.Err);
    }

    private static (int Code, string Out, string Err) Dpeft(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = DiffusionPeft.Cli.Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
