using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Captions;

/// <summary>
/// The background a caption mentions: colour, texture or both ("green striped background", "plain green background",
/// "green background" (any texture), "striped background" (any colour)).
/// </summary>
public sealed record BackgroundPhrase
{
    public ToyColour? Colour { get; }
    public BackgroundTexture? Texture { get; }

    public BackgroundPhrase(ToyColour? colour, BackgroundTexture? texture)
    {
        if (colour is null && texture is null) throw new ArgumentException("a background phrase names a colour, a texture or both");
        Colour = colour;
        Texture = texture;
    }

    public string ToText()
    {
        var colour = Colour is { } c ? ToyGrammar.Word(c) + " " : "";
        return Texture switch
        {
            null => colour + ToyGrammar.BackgroundWord,
            BackgroundTexture.Plain => ToyGrammar.PlainWord + " " + colour + ToyGrammar.BackgroundWord,
            { } t => colour + ToyGrammar.Word(t) + " " + ToyGrammar.BackgroundWord,
        };
    }

    public override string ToString() => ToText();
}
