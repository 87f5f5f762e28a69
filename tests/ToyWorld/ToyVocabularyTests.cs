using System.Text.Json.Nodes;
using DiffusionPeft.Core.Text;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Subjects;
using DiffusionPeft.ToyWorld.Vocabulary;

namespace DiffusionPeft.Tests.ToyWorld;

public sealed class ToyVocabularyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-toyvocab-").FullName;
    private readonly ClipTokenizer _tokenizer;

    public ToyVocabularyTests()
    {
        ToyVocabulary.Write(_dir);
        _tokenizer = ToyVocabulary.Load(_dir);
    }

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void EveryGrammarWordIdentifierAndClassNounIsOneToken()
    {
        var words = ToyGrammar.Words.Concat(ToySubjects.All.SelectMany(s => new[] { s.Identifier, s.ClassNoun })).Concat(ToyVocabulary.ExtraWords);
        foreach (var word in words)
        {
            var tokens = _tokenizer.Tokenize(word);
            Assert.True(tokens.Count == 1, $"'{word}' is {tokens.Count} tokens: {string.Join(" ", tokens)}");
            Assert.NotEqual(_tokenizer.UnkId, _tokenizer.Encode(word)[0]);
        }
        Assert.Equal(["a</w>", "large</w>", "orange</w>", "sks</w>", "star</w>", ",</w>", "plain</w>", "red</w>", "background</w>"],
            _tokenizer.Tokenize("a large orange sks star, plain red background"));
    }

    [Fact]
    public void OtherTextStillTokenizesByteByByte()
    {
        const string text = "a zebra in the snow! 42 café";
        var ids = _tokenizer.Encode(text);
        Assert.DoesNotContain(_tokenizer.UnkId, ids);
        Assert.Equal("a zebra in the snow ! 4 2 café", _tokenizer.Decode(ids));
    }

    [Fact]
    public void TheFolderIsLaidOutLikeClips()
    {
        var vocab = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "vocab.json")))!.AsObject();
        Assert.Equal(ToyVocabulary.VocabSize, vocab.Count);
        Assert.Equal(0, (int)vocab["!"]!);
        Assert.Equal(256, (int)vocab["!</w>"]!);
        Assert.Equal(ToyVocabulary.VocabSize - 2, (int)vocab["<|startoftext|>"]!);
        Assert.Equal(ToyVocabulary.VocabSize - 1, (int)vocab["<|endoftext|>"]!);
        Assert.Equal(512 + ToyVocabulary.Merges.Count + 2, ToyVocabulary.VocabSize); // one id per merge result
        var merges = File.ReadAllLines(Path.Combine(_dir, "merges.txt"));
        Assert.Equal("#version: 0.2", merges[0]);
        Assert.Equal(ToyVocabulary.Merges.Count + 1, merges.Length);
        Assert.Equal(ToyVocabulary.ContextLength, _tokenizer.MaxLength);
        Assert.Equal(ToyVocabulary.VocabSize - 2, _tokenizer.BosId);
        Assert.Equal(ToyVocabulary.VocabSize - 1, _tokenizer.EosId);
        Assert.Equal(32, (int)JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "tokenizer_config.json")))!["model_max_length"]!);
    }

    [Fact]
    public void EveryCaptionFitsTheContext()
    {
        var world = new World(0);
        int longest = 0;
        void Check(string text)
        {
            var tokens = _tokenizer.EncodeForModel(text);
            Assert.False(tokens.Truncated, $"'{text}' is longer than {ToyVocabulary.MaxCaptionTokens} tokens");
            longest = Math.Max(longest, (int)tokens.AttentionMask.Sum() - 2);
        }
        for (int i = 0; i < 1000; i++)
        {
            Check(world.FullCaption(i).ToText());
            Check(world.TrainingCaption(i).ToText());
        }
        foreach (var p in world.HeldOutPrompts(200)) Check(p.Text);
        foreach (var s in ToySubjects.All)
            foreach (var t in ToyDreamBoothPrompts.Templates) Check(ToyDreamBoothPrompts.Fill(t, s));
        // The longest caption the grammar can make: two objects with every attribute, the longest words, an identifier each.
        var longestObject = new ObjectPhrase(ToyShape.Diamond, ToyColour.Orange, ToySize.Medium, ToyPosition.BottomRight, "sks");
        Check(new ToyCaption(longestObject, longestObject, new BackgroundPhrase(ToyColour.Orange, BackgroundTexture.Plain), BackgroundConnector.OnA).ToText());
        Assert.Equal(24, longest);
    }
}
