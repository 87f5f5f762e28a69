using DiffusionPeft.ToyWorld.Captions;

namespace DiffusionPeft.Tests.ToyWorld;

public static class CaptionAssert
{
    /// <summary>Every attribute <paramref name="partial"/> mentions has the value <paramref name="full"/> gives it.</summary>
    public static void MentionsOnlyWhatIsThere(ToyCaption full, ToyCaption partial)
    {
        AssertSubset(full.Main, partial.Main);
        if (partial.Second is not null) AssertSubset(full.Second!, partial.Second);
        if (partial.Background is { } b)
        {
            if (b.Colour is not null) Assert.Equal(full.Background!.Colour, b.Colour);
            if (b.Texture is not null) Assert.Equal(full.Background!.Texture, b.Texture);
        }

        static void AssertSubset(ObjectPhrase full, ObjectPhrase part)
        {
            Assert.Equal(full.Shape, part.Shape);
            Assert.Equal(full.Identifier, part.Identifier);
            if (part.Colour is not null) Assert.Equal(full.Colour, part.Colour);
            if (part.Size is not null) Assert.Equal(full.Size, part.Size);
            if (part.Position is not null) Assert.Equal(full.Position, part.Position);
        }
    }
}
