using System.Text.Json.Nodes;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Core.Text;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Text;

/// <summary>transformers' slow CLIPTokenizer (4.36) on every manifest case of kind clip_tokenizer, compared exactly.</summary>
[Trait("Category", "Golden")]
public sealed class ClipTokenizerGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("clip_tokenizer");

    private sealed record GoldenTokenizerCase(JsonObject Expected, ClipTokenizerOptions Options, string Vocab, string Merges, string BangPadToken)
    {
        public ClipTokenizer Create(ClipTokenizerOptions options) => ClipTokenizer.FromFiles(Vocab, Merges, options);
        public IEnumerable<JsonObject> Texts => Expected["cases"]!.AsArray().Select(n => (JsonObject)n!);
    }

    private static GoldenTokenizerCase Load(string caseName)
    {
        var files = (JsonObject)GoldenData.Case(caseName)["files"]!;
        var expected = (JsonObject)JsonNode.Parse(File.ReadAllText(GoldenData.FileOf(caseName, "expected")))!;
        var options = ClipTokenizer.OptionsFromConfig(files.ContainsKey("tokenizer_config") ? GoldenData.FileOf(caseName, "tokenizer_config") : null);
        options = GoldenTokenizerSettings.WithKwargs(options, GoldenData.Case(caseName)["tokenizer_kwargs"], $"{caseName} tokenizer_kwargs");
        foreach (var key in new[] { "unk_token", "bos_token", "eos_token", "pad_token" })
            if (expected[key] is JsonValue token)
                options = GoldenTokenizerSettings.WithKwargs(options, new JsonObject { [key] = token.DeepClone() }, $"{caseName}/expected.json");
        if (expected["max_length"] is JsonValue maxLength) options = options with { MaxLength = (int)maxLength };
        return new GoldenTokenizerCase(expected, options, GoldenData.FileOf(caseName, "vocab"), GoldenData.FileOf(caseName, "merges"), BangPadToken(caseName));
    }

    /// <summary>
    /// The pad token of the "input_ids_pad_bang_*" results (the SD 2.x setting): as the manifest's description of those fields
    /// states it (pad_token='!'), else the "!" their name says.
    /// </summary>
    private static string BangPadToken(string caseName)
    {
        var fields = GoldenData.Case(caseName)["expected_fields"] as JsonObject;
        var description = fields?.FirstOrDefault(kv => kv.Key.StartsWith("input_ids_pad_bang", StringComparison.Ordinal)).Value;
        var m = description is JsonValue v ? System.Text.RegularExpressions.Regex.Match((string)v!, @"pad_token\s*=\s*(['""])(?<t>.+?)\1") : null;
        return m is { Success: true } ? m.Groups["t"].Value : "!";
    }

    [Theory, MemberData(nameof(Cases))]
    public void SpecialTokenIdsMatch(string caseName)
    {
        var c = Load(caseName);
        var tok = c.Create(c.Options);
        Assert.Equal((int)c.Expected["bos_token_id"]!, tok.BosId);
        Assert.Equal((int)c.Expected["eos_token_id"]!, tok.EosId);
        Assert.Equal((int)(c.Expected["pad_token_id"] ?? c.Expected["pad_token_id_sd1"])!, tok.PadId);
        if (c.Expected["unk_token_id"] is JsonValue unk) Assert.Equal((int)unk, tok.UnkId);
        if (c.Expected["pad_token_id_sd2"] is JsonValue sd2) Assert.Equal((int)sd2, c.Create(c.Options with { PadToken = c.BangPadToken }).PadId);
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTransformersWithoutFtfy(string caseName)
    {
        var c = Load(caseName);
        var tok = c.Create(c.Options);
        var bang = c.Create(c.Options with { PadToken = c.BangPadToken });
        int checkedBang = 0;
        foreach (var t in c.Texts)
        {
            var text = (string)t["text"]!;
            AssertMatches(tok, text, (JsonObject)t["without_ftfy"]!);
            if (t["input_ids_pad_bang_without_ftfy"] is JsonArray bangIds)
            {
                Assert.Equal(Longs(bangIds), bang.EncodeForModel(text).InputIds);
                checkedBang++;
            }
        }
        output.WriteLine($"{caseName}: {c.Texts.Count()} texts, {checkedBang} with pad '!'");
    }

    /// <summary>
    /// The ftfy-like cleanup (no mojibake repair) against the with_ftfy results: the golden texts exercise
    /// what it covers (curly quotes, HTML entities, ligatures, full-width forms, zero-width characters,
    /// case mappings); all must match. The count is logged.
    /// </summary>
    [Theory, MemberData(nameof(Cases))]
    public void FtfyLikeCleanupMatchesTransformersWithFtfy(string caseName)
    {
        var c = Load(caseName);
        var tok = c.Create(c.Options with { Cleanup = ClipTextCleanup.FtfyLike });
        var bang = c.Create(c.Options with { Cleanup = ClipTextCleanup.FtfyLike, PadToken = c.BangPadToken });
        var failures = new List<string>();
        int total = 0;
        foreach (var t in c.Texts)
        {
            total++;
            var text = (string)t["text"]!;
            var exp = (JsonObject)t["with_ftfy"]!;
            bool ok = Matches(tok, text, exp)
                && (t["input_ids_pad_bang_with_ftfy"] is not JsonArray b || Longs(b).SequenceEqual(bang.EncodeForModel(text).InputIds));
            if (!ok) failures.Add($"{System.Text.Json.JsonSerializer.Serialize(text)}: got [{string.Join(", ", tok.Tokenize(text))}], expected {exp["tokens"]!.ToJsonString()}");
        }
        output.WriteLine($"{caseName}: ftfy-like cleanup matches {total - failures.Count}/{total} with_ftfy texts");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static void AssertMatches(ClipTokenizer tok, string text, JsonObject exp)
    {
        var what = System.Text.Json.JsonSerializer.Serialize(text);
        Assert.True(exp["tokens"]!.AsArray().Select(n => (string)n!).SequenceEqual(tok.Tokenize(text)),
            $"{what}: tokens [{string.Join(", ", tok.Tokenize(text))}] != {exp["tokens"]!.ToJsonString()}");
        Assert.Equal(exp["ids"]!.AsArray().Select(n => (int)n!).ToArray(), tok.Encode(text));
        var model = tok.EncodeForModel(text);
        Assert.Equal(Longs(exp["input_ids"]!.AsArray()), model.InputIds);
        Assert.Equal(Longs(exp["attention_mask"]!.AsArray()), model.AttentionMask);
        Assert.Equal(exp["ids"]!.AsArray().Count > tok.MaxLength - 2, model.Truncated);
    }

    private static bool Matches(ClipTokenizer tok, string text, JsonObject exp)
    {
        try { AssertMatches(tok, text, exp); return true; }
        catch (Xunit.Sdk.XunitException) { return false; }
    }

    private static long[] Longs(JsonArray a) => a.Select(n => (long)n!).ToArray();
}
