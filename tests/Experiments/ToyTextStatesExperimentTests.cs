using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Experiments.ToyTextStates;

namespace DiffusionPeft.Tests.Experiments;

/// <summary>toy-text-states on the shipped model: the distance tables it reports are distances, and whitening spreads the states.</summary>
public sealed class ToyTextStatesExperimentTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-textstates-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void ReportsEachWordFamilysDistancesBeforeAndAfterWhitening()
    {
        Assert.Equal(0, ToyTextStatesExperiment.RunCommand(["--model", EmbeddedDefaultModel.Keyword, "--captions", "300", "--out", _dir], _dir));
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "results.json")))!;
        Assert.Equal(300, (int)report["captions"]!);
        var eigen = report["eigenvalues"]!;
        Assert.True((double)eigen["max"]! > 100 * (double)eigen["median"]!, "a few directions dominate the states");
        foreach (var (family, size) in new[] { ("colour", 10), ("shape", 8), ("position", 7) })
        {
            foreach (var key in new[] { "distances", "distances_whitened" })
            {
                var d = report["families"]![family]![key]!.AsArray().Select(r => r!.AsArray().Select(x => (double)x!).ToArray()).ToArray();
                Assert.Equal(size, d.Length);
                for (int i = 0; i < size; i++)
                {
                    Assert.Equal(0, d[i][i]);
                    for (int j = 0; j < size; j++) if (i != j) Assert.True(d[i][j] > 0, $"{family} {key} [{i},{j}]");
                }
            }
            // The closest pair of each family is farther apart once whitened.
            double MinOff(string key) => report["families"]![family]![key]!.AsArray()
                .SelectMany((r, i) => r!.AsArray().Select((x, j) => (i, j, v: (double)x!))).Where(t => t.i != t.j).Min(t => t.v);
            Assert.True(MinOff("distances_whitened") > MinOff("distances"), family);
        }
        Assert.Contains("| shape | 28 |", File.ReadAllText(Path.Combine(_dir, "results.md")));
    }
}
