using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.ToyWorld.Captions;

/// <summary>
/// Training captions: the full caption with attributes left out at random, so that the partial prompts people write
/// ("a red circle", "a blue square on the left", "a star, striped background") work as well as full ones. Each
/// attribute is kept with the probability below, independently; the shape is always kept, the background is joined
/// by ", " or " on a " with equal odds. About <see cref="FullCaptionShare"/> of the captions come out complete.
/// </summary>
public static class TrainingCaptions
{
    public const double KeepColour = 0.9, KeepSize = 0.6, KeepPosition = 0.65, KeepSecondObject = 0.6, KeepBackground = 0.55;
    /// <summary>Of the kept backgrounds: both colour and texture (the rest splits evenly into colour only and texture only).</summary>
    public const double KeepWholeBackground = 0.6;

    /// <summary>The share of one-object captions with every attribute (colour, size, position, whole background).</summary>
    public const double FullCaptionShare = KeepColour * KeepSize * KeepPosition * KeepBackground * KeepWholeBackground;

    public static ToyCaption Sample(ToyScene scene, ref ToyRandom rng)
    {
        var full = scene.FullCaption();
        var main = Thin(full.Main, ref rng);
        var second = full.Second is not null && rng.Chance(KeepSecondObject) ? Thin(full.Second, ref rng) : null;
        BackgroundPhrase? background = null;
        if (rng.Chance(KeepBackground))
        {
            double u = rng.NextDouble();
            var b = scene.Background;
            background = u < KeepWholeBackground ? new BackgroundPhrase(b.Colour, b.Texture)
                : u < (1 + KeepWholeBackground) / 2 ? new BackgroundPhrase(b.Colour, null)
                : new BackgroundPhrase(null, b.Texture);
        }
        var connector = rng.Chance(0.5) && background is not null ? BackgroundConnector.OnA : BackgroundConnector.Comma;
        return new ToyCaption(main, second, background, connector);
    }

    private static ObjectPhrase Thin(ObjectPhrase o, ref ToyRandom rng) => o with
    {
        Colour = rng.Chance(KeepColour) ? o.Colour : null,
        Size = rng.Chance(KeepSize) ? o.Size : null,
        Position = rng.Chance(KeepPosition) ? o.Position : null,
    };
}
