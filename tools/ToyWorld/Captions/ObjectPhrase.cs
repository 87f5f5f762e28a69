using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Captions;

/// <summary>
/// One object of a caption: its shape and whichever of size, colour and position the caption mentions, plus an
/// optional identifier word before the shape (a DreamBooth subject: "a small sks star").
/// </summary>
public sealed record ObjectPhrase(ToyShape Shape, ToyColour? Colour = null, ToySize? Size = null, ToyPosition? Position = null,
    string? Identifier = null)
{
    /// <summary>"a large red sks star on the left" (article, size, colour, identifier, shape, position).</summary>
    public string ToText()
    {
        var words = new List<string>();
        if (Size is { } s) words.Add(ToyGrammar.Word(s));
        if (Colour is { } c) words.Add(ToyGrammar.Word(c));
        if (Identifier is not null) words.Add(Identifier);
        words.Add(ToyGrammar.Word(Shape));
        var text = ToyGrammar.Article(words[0]) + " " + string.Join(' ', words);
        return Position is { } p ? text + " " + ToyGrammar.PositionPhrase(p) : text;
    }

    public override string ToString() => ToText();
}
