namespace DiffusionPeft.ToyWorld.Captions;

/// <summary>
/// A caption of the grammar: a main object, optionally a second one ("... and a small blue circle on the right"),
/// optionally a background. Parsed from text by <see cref="CaptionParser"/>, written back by <see cref="ToText"/>
/// (Parse(ToText()) gives the same caption; <see cref="Connector"/> is Comma when there is no background). Attributes
/// left out are null: the caption says nothing about them.
/// </summary>
public sealed record ToyCaption(ObjectPhrase Main, ObjectPhrase? Second = null, BackgroundPhrase? Background = null,
    BackgroundConnector Connector = BackgroundConnector.Comma)
{
    public IEnumerable<ObjectPhrase> Objects => Second is null ? [Main] : [Main, Second];

    public string ToText()
    {
        var text = Main.ToText();
        if (Second is not null) text += " and " + Second.ToText();
        if (Background is null) return text;
        var bg = Background.ToText();
        return Connector == BackgroundConnector.Comma ? text + ", " + bg : text + " on " + Grammar.ToyGrammar.Article(bg) + " " + bg;
    }

    public static ToyCaption Parse(string text) => CaptionParser.Parse(text);

    public override string ToString() => ToText();
}
