namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>
/// The words of the caption grammar. A full caption reads
/// <c>a large red star on the left and a small blue circle at the top right, green striped background</c>:
/// one or two object phrases (article, size, colour, shape, position) and a background phrase after a comma
/// (training captions also say "on a green striped background"). A plain background is "plain green background".
/// </summary>
public static class ToyGrammar
{
    public const string BackgroundWord = "background", PlainWord = "plain", AndWord = "and", Comma = ",";

    public static string Word(ToyColour c) => c.ToString().ToLowerInvariant();
    public static string Word(ToyShape s) => s.ToString().ToLowerInvariant();
    public static string Word(ToySize s) => s.ToString().ToLowerInvariant();

    /// <summary>"small,large": size words separated by commas, each once, in the order given; null if any is not a size word.</summary>
    public static ToySize[]? ParseSizes(string text) => ParseWords<ToySize>(text, Word);

    /// <summary>The inverse of <see cref="ParseSizes"/>: "small,medium,large".</summary>
    public static string SizeList(IEnumerable<ToySize> sizes) => string.Join(",", sizes.Select(Word));

    /// <summary>"plain,striped": texture words separated by commas, each once, in the order given; null if any is not a texture word.</summary>
    public static BackgroundTexture[]? ParseTextures(string text) => ParseWords<BackgroundTexture>(text, Word);

    /// <summary>The inverse of <see cref="ParseTextures"/>: "plain,gradient,striped,checked".</summary>
    public static string TextureList(IEnumerable<BackgroundTexture> textures) => string.Join(",", textures.Select(Word));

    private static T[]? ParseWords<T>(string text, Func<T, string> word) where T : struct, Enum
    {
        var values = new List<T>();
        foreach (var w in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (Enum.GetValues<T>().Where(v => word(v) == w.ToLowerInvariant()).ToArray() is not [var value]) return null;
            if (!values.Contains(value)) values.Add(value);
        }
        return [.. values];
    }

    public static string Word(BackgroundTexture t) => t switch
    {
        BackgroundTexture.Plain => PlainWord,
        BackgroundTexture.Gradient => "gradient",
        BackgroundTexture.Striped => "striped",
        BackgroundTexture.Checked => "checked",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "not a background texture"),
    };

    public static string PositionPhrase(ToyPosition p) => p switch
    {
        ToyPosition.TopLeft => "at the top left",
        ToyPosition.Top => "at the top",
        ToyPosition.TopRight => "at the top right",
        ToyPosition.Left => "on the left",
        ToyPosition.Center => "in the center",
        ToyPosition.Right => "on the right",
        ToyPosition.BottomLeft => "at the bottom left",
        ToyPosition.Bottom => "at the bottom",
        ToyPosition.BottomRight => "at the bottom right",
        _ => throw new ArgumentOutOfRangeException(nameof(p), p, "not a toy position"),
    };

    /// <summary>"an" before a word that starts with a vowel ("an orange star"), else "a".</summary>
    public static string Article(string nextWord) => nextWord.Length > 0 && "aeiou".Contains(nextWord[0]) ? "an" : "a";

    /// <summary>Every word a caption of the grammar can contain, punctuation included, in a fixed order.</summary>
    public static IReadOnlyList<string> Words { get; } = BuildWords();

    public static bool IsGrammarWord(string word) => WordSet.Contains(word);

    private static readonly HashSet<string> WordSet = new(Words, StringComparer.Ordinal);

    private static string[] BuildWords()
    {
        var words = new List<string> { "a", "an", AndWord, Comma, BackgroundWord };
        words.AddRange(Enum.GetValues<ToySize>().Select(Word));
        words.AddRange(Enum.GetValues<ToyColour>().Select(Word));
        words.AddRange(Enum.GetValues<ToyShape>().Select(Word));
        words.AddRange(Enum.GetValues<BackgroundTexture>().Select(Word));
        words.AddRange(Enum.GetValues<ToyPosition>().SelectMany(p => PositionPhrase(p).Split(' ')));
        return words.Distinct(StringComparer.Ordinal).ToArray();
    }
}
