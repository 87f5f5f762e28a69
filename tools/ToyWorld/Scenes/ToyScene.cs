using DiffusionPeft.ToyWorld.Captions;

namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>A scene: a background and one or two objects (<see cref="Main"/> is the one a caption names first).</summary>
public sealed record ToyScene(SceneBackground Background, SceneObject Main, SceneObject? Second = null)
{
    public IEnumerable<SceneObject> Objects => Second is null ? [Main] : [Main, Second];

    /// <summary>
    /// Every attribute of the scene: "a large red star on the left and a small blue circle at the top right, green
    /// striped background". A DreamBooth subject is named by its identifier, not a colour: "a large sks star ...".
    /// </summary>
    public ToyCaption FullCaption() => new(Phrase(Main), Second is null ? null : Phrase(Second),
        new BackgroundPhrase(Background.Colour, Background.Texture));

    private static ObjectPhrase Phrase(SceneObject o) =>
        new(o.Shape, o.Subject is null ? o.Colour : null, o.Size, o.Position, o.Subject?.Identifier);
}
