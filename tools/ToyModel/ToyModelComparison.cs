using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using DiffusionPeft.ToyWorld.Judge;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// Two toy-model evaluations (evaluation.json of <c>dpeft toy-model evaluate</c>) compared image by image: the same
/// held-out prompt and seed, judged in both, so per attribute the images only A gets right and those only B gets right
/// decide, with McNemar's exact test (a two-sided binomial test on those discordant pairs, p = 0.5). Paired, it sees
/// a difference of a few points that two separate 95% intervals of 400 images would not.
/// </summary>
public static class ToyModelComparison
{
    /// <param name="APercent">A's accuracy over the images both judged on this attribute.</param>
    /// <param name="AOnly">Images A got right and B wrong.</param>
    public sealed record Row(JudgeAttribute Attribute, int Pairs, double APercent, double BPercent, int AOnly, int BOnly, double P);

    public sealed record Result(int PairedImages, int AImages, int BImages, IReadOnlyList<Row> Rows);

    public static Result Compare(JsonObject a, JsonObject b, string aName = "A", string bName = "B")
    {
        var left = Results(a, aName);
        var right = Results(b, bName);
        var keys = left.Keys.Where(right.ContainsKey).ToList();
        if (keys.Count == 0)
            throw new InvalidDataException($"{aName} and {bName} share no image (prompt and seed): they were made on other held-out captions (--scenes, --world-seed) or seeds");
        var rows = new List<Row>();
        foreach (var attribute in Enum.GetValues<JudgeAttribute>())
        {
            var name = attribute.ToString();
            var pairs = keys.Select(k => (A: Verdict(left[k], name), B: Verdict(right[k], name))).Where(p => p.A is not null && p.B is not null).ToList();
            if (pairs.Count == 0) continue;
            int aOnly = pairs.Count(p => p.A == true && p.B == false), bOnly = pairs.Count(p => p.A == false && p.B == true);
            rows.Add(new Row(attribute, pairs.Count, 100.0 * pairs.Count(p => p.A == true) / pairs.Count, 100.0 * pairs.Count(p => p.B == true) / pairs.Count,
                             aOnly, bOnly, McNemarExact(aOnly, bOnly)));
        }
        return new Result(keys.Count, left.Count, right.Count, rows);
    }

    /// <summary>
    /// McNemar's exact two-sided p-value: twice the smaller binomial tail of the discordant pairs at p = 1/2, at most 1
    /// (1 when there are none). Summed in log space, so thousands of pairs neither underflow nor overflow.
    /// </summary>
    public static double McNemarExact(int aOnly, int bOnly)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(aOnly);
        ArgumentOutOfRangeException.ThrowIfNegative(bOnly);
        int n = aOnly + bOnly, k = Math.Min(aOnly, bOnly);
        if (n == 0) return 1;
        double logHalfN = n * Math.Log(0.5), logChoose = 0, tail = 0;
        for (int i = 0; i <= k; i++)
        {
            if (i > 0) logChoose += Math.Log(n - i + 1) - Math.Log(i);
            tail += Math.Exp(logChoose + logHalfN);
        }
        return Math.Min(1, 2 * tail);
    }

    public static string Markdown(Result r, string aName, string bName)
    {
        var md = new StringBuilder();
        md.AppendLine($"A = {aName}, B = {bName}: {r.PairedImages} images made by both (same prompt and seed; A has {r.AImages}, B {r.BImages}).");
        md.AppendLine();
        md.AppendLine("| attribute | images | A | B | only A right | only B right | McNemar exact p |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var row in r.Rows)
            md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {row.Attribute} | {row.Pairs} | {row.APercent:F1}% | {row.BPercent:F1}% | {row.AOnly} | {row.BOnly} | {row.P:G3} |"));
        return md.ToString();
    }

    /// <summary>(prompt, seed) → the judge's verdicts, from evaluation.json's "images".</summary>
    private static Dictionary<(string Prompt, long Seed), JsonObject> Results(JsonObject evaluation, string name)
    {
        if (evaluation["images"] is not JsonArray images)
            throw new InvalidDataException($"{name}: no \"images\" list: not an evaluation.json of dpeft toy-model evaluate");
        var results = new Dictionary<(string, long), JsonObject>();
        foreach (var node in images)
        {
            if (node?["prompt"]?.GetValue<string>() is not { } prompt || node["seed"] is not JsonValue seed || node["results"] is not JsonObject verdicts)
                throw new InvalidDataException($"{name}: an image without prompt, seed or results: {node?.ToJsonString()}");
            results[(prompt, seed.GetValue<long>())] = verdicts;
        }
        return results;
    }

    private static bool? Verdict(JsonObject results, string attribute) =>
        results[attribute] is JsonValue v && v.TryGetValue<bool>(out var right) ? right : null;
}
