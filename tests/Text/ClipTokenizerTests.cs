using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Tests.Text;

/// <summary>Tokenizer behaviour the golden cases do not pin down, on a small vocabulary these tests write (<see cref="TinyClipVocabulary"/>).</summary>
public sealed class ClipTokenizerTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("dpeft-clip-tok-").FullName;
    private readonly string _vocab;
    private readonly string _merges;

    public ClipTokenizerTests()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_tmp, "fixture")).FullName;
        (_vocab, _merges) = TinyClipVocabulary.Write(dir, "photograph", "astronaut", "horse", "of", "an");
    }

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private ClipTokenizer Tiny(ClipTokenizerOptions? options = null) => ClipTokenizer.FromFiles(_vocab, _merges, options);

    [Fact]
    public void TruncationKeepsBosBodyEosAndReportsWhatWasCut()
    {
        var tok = Tiny();
        var text = string.Concat(Enumerable.Repeat("a ", 74)) + "photograph of an astronaut";
        Assert.Equal(74 + 4, tok.Encode(text).Length); // one token per word in this vocabulary
        var p = tok.EncodeForModel(text);
        Assert.True(p.Truncated);
        Assert.Equal("of an astronaut", p.TruncatedText);
        Assert.Equal(77, p.InputIds.Length);
        Assert.Equal(tok.BosId, p.InputIds[0]);
        Assert.Equal(tok.EosId, p.InputIds[76]);
        Assert.Equal(tok.TokenToId("photograph</w>"), p.InputIds[75]);
        Assert.All(p.AttentionMask, m => Assert.Equal(1, m));

        var shortPrompt = tok.EncodeForModel("a horse");
        Assert.False(shortPrompt.Truncated);
        Assert.Null(shortPrompt.TruncatedText);
    }

    [Fact]
    public void DecodeInvertsEncodeForCleanedText()
    {
        var tok = Tiny();
        const string text = "a café at 3.14 o'clock, naïve 東京";
        // "'c" is not one of CLIP's contractions, so the apostrophe is a word of its own.
        Assert.Equal("a café at 3 . 1 4 o ' clock , naïve 東 京", tok.Decode(tok.Encode(text)));
        Assert.Equal("<|startoftext|>a horse <|endoftext|>", tok.Decode([tok.BosId, .. tok.Encode("a horse"), tok.EosId], skipSpecialTokens: false));
    }

    [Fact]
    public void SupplementaryLettersFormOneWord()
    {
        // U+1D400/U+1D401 are letters (Lu) outside the BMP: one [\p{L}]+ run with "c", so only the last symbol gets </w>.
        var tokens = Tiny().Tokenize("\U0001D400\U0001D401c");
        Assert.Single(tokens, t => t.EndsWith("</w>"));
        Assert.Equal("c</w>", tokens[^1]);
    }

    [Fact]
    public void UppercaseSpecialTokenIsKeptWholeAfterLowerCasing()
    {
        // Not split off the raw text (the split is case-sensitive), but CLIP's pattern and BPE cache keep it whole.
        var tok = Tiny();
        Assert.Equal([tok.TokenToId("a</w>"), tok.EosId, tok.TokenToId("a</w>")], tok.Encode("a <|ENDOFTEXT|> a"));
    }

    [Theory]
    [InlineData("ΟΔΟΣ ΣΑΣ", "οδος σας")]
    [InlineData("İstanbul", "i\u0307stanbul")]
    [InlineData("ẞ ǅ Ω", "ß ǆ ω")]
    public void LowerCasingFollowsPython(string text, string expected) => Assert.Equal(expected, ClipTextCleanupRules.PythonLower(text));

    [Fact]
    public void BasicCleanupMatchesBertRules()
    {
        Assert.Equal("a b c 東 京 タワー", ClipTextCleanupRules.BasicClean("  A\tb\u00A0C\u0007東京タワー \n"));
        Assert.Equal("zerowidth", ClipTextCleanupRules.BasicClean("zero\u200Bwidth"));
        Assert.Equal("ã", ClipTextCleanupRules.BasicClean("a\u0303"));
    }

    [Fact]
    public void FolderConfigSetsPadTokenAndMaxLength()
    {
        File.Copy(_vocab, Path.Combine(_tmp, "vocab.json"));
        File.Copy(_merges, Path.Combine(_tmp, "merges.txt"));
        File.WriteAllText(Path.Combine(_tmp, "tokenizer_config.json"), """{"model_max_length": 20, "pad_token": "<|endoftext|>"}""");
        File.WriteAllText(Path.Combine(_tmp, "special_tokens_map.json"), """{"pad_token": {"content": "!", "lstrip": false}}""");
        var tok = ClipTokenizer.FromFolder(_tmp);
        Assert.Equal(20, tok.MaxLength);
        Assert.Equal(tok.TokenToId("!"), tok.PadId);
        Assert.NotEqual(tok.EosId, tok.PadId);
        var p = tok.EncodeForModel("a horse!");
        // "!" is the pad token, hence special: split off whole, never merged.
        long[] body = [tok.BosId, tok.TokenToId("a</w>"), tok.TokenToId("horse</w>"), tok.PadId, tok.EosId];
        Assert.Equal([.. body, .. Enumerable.Repeat((long)tok.PadId, 20 - body.Length)], p.InputIds);
        Assert.Equal(5, p.AttentionMask.Sum());
    }

    [Theory]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("""{"a": "x"}""", "non-negative integer id")]
    [InlineData("[1, 2]", "JSON object")]
    [InlineData("{}", "empty")]
    public void BadVocabFileGivesErrorNamingTheFile(string content, string fault)
    {
        var vocab = Path.Combine(_tmp, "vocab.json");
        File.WriteAllText(vocab, content);
        var ex = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromFiles(vocab, _merges));
        Assert.Contains(vocab, ex.Message);
        Assert.Contains(fault, ex.Message);
    }

    [Fact]
    public void BadOrMissingMergesFileGivesErrorNamingTheFile()
    {
        var merges = Path.Combine(_tmp, "merges.txt");
        var vocab = _vocab;
        var missing = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.FromFiles(vocab, merges));
        Assert.Contains(merges, missing.Message);
        File.WriteAllText(merges, "#version: 0.2\ni n\nt h e\n");
        var bad = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromFiles(vocab, merges));
        Assert.Contains(merges, bad.Message);
        Assert.Contains("line 3", bad.Message);
    }
}
