using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Captions;

/// <summary>
/// Parses captions of the toy grammar, full or partial, case-insensitively:
/// <code>
/// caption    := object ["and" object] [("," | "on" ("a"|"an")) background] ["."]
/// object     := ("a"|"an") [size] [colour] [identifier] shape [position]
/// position   := "at the top" ["left"|"right"] | "at the bottom" ["left"|"right"] | "on the left" | "on the right" | "in the center"
/// background := "plain" [colour] "background" | colour [texture] "background" | texture "background"
/// </code>
/// An identifier is any one word outside the grammar right before the shape noun ("a sks star").
/// </summary>
public static class CaptionParser
{
    private static readonly Dictionary<string, ToyColour> Colours = Enum.GetValues<ToyColour>().ToDictionary(ToyGrammar.Word);
    private static readonly Dictionary<string, ToyShape> Shapes = Enum.GetValues<ToyShape>().ToDictionary(ToyGrammar.Word);
    private static readonly Dictionary<string, ToySize> Sizes = Enum.GetValues<ToySize>().ToDictionary(ToyGrammar.Word);
    private static readonly Dictionary<string, BackgroundTexture> Textures = Enum.GetValues<BackgroundTexture>()
        .Where(t => t != BackgroundTexture.Plain).ToDictionary(ToyGrammar.Word);

    public static ToyCaption Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var r = new Reader(text);
        var main = ParseObject(r);
        ObjectPhrase? second = null;
        if (r.Accept(ToyGrammar.AndWord)) second = ParseObject(r);
        BackgroundPhrase? background = null;
        var connector = BackgroundConnector.Comma;
        if (r.Accept(ToyGrammar.Comma)) background = ParseBackground(r);
        else if (r.Peek() == "on" && r.Peek(1) is "a" or "an")
        {
            r.Next(); r.Next();
            background = ParseBackground(r);
            connector = BackgroundConnector.OnA;
        }
        if (!r.AtEnd) throw r.Error("the end of the caption");
        return new ToyCaption(main, second, background, connector);
    }

    public static bool TryParse(string text, out ToyCaption? caption)
    {
        try { caption = Parse(text); return true; }
        catch (CaptionParseException) { caption = null; return false; }
    }

    private static ObjectPhrase ParseObject(Reader r)
    {
        if (!r.Accept("a") && !r.Accept("an")) throw r.Error("'a' or 'an'");
        ToySize? size = Sizes.TryGetValue(r.Peek() ?? "", out var s) ? Take(r, s) : null;
        ToyColour? colour = Colours.TryGetValue(r.Peek() ?? "", out var c) ? Take(r, c) : null;
        string? identifier = null;
        if (r.Peek() is { } w && !ToyGrammar.IsGrammarWord(w) && Shapes.ContainsKey(r.Peek(1) ?? "")) identifier = r.Next();
        if (!Shapes.TryGetValue(r.Peek() ?? "", out var shape)) throw r.Error("a shape (" + string.Join(", ", Shapes.Keys) + ")");
        r.Next();
        return new ObjectPhrase(shape, colour, size, ParsePosition(r), identifier);
    }

    private static ToyPosition? ParsePosition(Reader r)
    {
        switch (r.Peek(), r.Peek(1))
        {
            case ("at", "the"):
                r.Next(); r.Next();
                int row = r.Accept("top") ? 0 : r.Accept("bottom") ? 2 : throw r.Error("'top' or 'bottom'");
                int column = r.Accept("left") ? 0 : r.Accept("right") ? 2 : 1;
                return ToyGeometry.PositionAt(row, column);
            case ("on", "the"):
                r.Next(); r.Next();
                return r.Accept("left") ? ToyPosition.Left : r.Accept("right") ? ToyPosition.Right : throw r.Error("'left' or 'right'");
            case ("in", "the"):
                r.Next(); r.Next();
                return r.Accept("center") ? ToyPosition.Center : throw r.Error("'center'");
            default:
                return null;
        }
    }

    private static BackgroundPhrase ParseBackground(Reader r)
    {
        BackgroundTexture? texture = r.Accept(ToyGrammar.PlainWord) ? BackgroundTexture.Plain : null;
        ToyColour? colour = Colours.TryGetValue(r.Peek() ?? "", out var c) ? Take(r, c) : null;
        if (texture is null && Textures.TryGetValue(r.Peek() ?? "", out var t)) texture = Take(r, t);
        if (texture is null && colour is null) throw r.Error("a background colour or texture (plain, gradient, striped, checked)");
        if (!r.Accept(ToyGrammar.BackgroundWord)) throw r.Error("'background'");
        return new BackgroundPhrase(colour, texture);
    }

    private static T Take<T>(Reader r, T value)
    {
        r.Next();
        return value;
    }

    /// <summary>The caption's words: lower case, commas and a final period as words of their own.</summary>
    private sealed class Reader(string text)
    {
        private readonly string[] _words = text.ToLowerInvariant().Replace(",", " , ").Trim().TrimEnd('.').Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        private int _at;

        public bool AtEnd => _at >= _words.Length;
        public string? Peek(int ahead = 0) => _at + ahead < _words.Length ? _words[_at + ahead] : null;
        public string Next() => _words[_at++];

        public bool Accept(string word)
        {
            if (Peek() != word) return false;
            _at++;
            return true;
        }

        public CaptionParseException Error(string expected) => new(
            $"'{text}' is not a toy-world caption: expected {expected} at word {_at + 1} ({(AtEnd ? "the end" : $"'{_words[_at]}'")})");
    }
}
