using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.Tests.ToyWorld;

public sealed class CaptionTests
{
    private static readonly World World0 = new(0);

    [Theory]
    [InlineData("large", new[] { ToySize.Large })]
    [InlineData("Small, large,small", new[] { ToySize.Small, ToySize.Large })]
    [InlineData("medium,small", new[] { ToySize.Medium, ToySize.Small })]
    public void SizeListsParseToDistinctSizesInTheOrderGivenAndFormatBack(string text, ToySize[] sizes)
    {
        Assert.Equal(sizes, ToyGrammar.ParseSizes(text));
        Assert.Equal(sizes, ToyGrammar.ParseSizes(ToyGrammar.SizeList(sizes)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("huge")]
    [InlineData("small,,large")]
    [InlineData("small;large")]
    public void ASizeListWithAnythingButSizeWordsIsRefused(string text) => Assert.Null(ToyGrammar.ParseSizes(text));

    [Theory]
    [InlineData("plain", new[] { BackgroundTexture.Plain })]
    [InlineData("checked, Striped,checked", new[] { BackgroundTexture.Checked, BackgroundTexture.Striped })]
    [InlineData("plain,gradient,striped,checked", new[] { BackgroundTexture.Plain, BackgroundTexture.Gradient, BackgroundTexture.Striped, BackgroundTexture.Checked })]
    public void TextureListsParseToDistinctTexturesInTheOrderGivenAndFormatBack(string text, BackgroundTexture[] textures)
    {
        Assert.Equal(textures, ToyGrammar.ParseTextures(text));
        Assert.Equal(textures, ToyGrammar.ParseTextures(ToyGrammar.TextureList(textures)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("dotted")]
    [InlineData("plain,,striped")]
    [InlineData("checks")]
    public void ATextureListWithAnythingButTextureWordsIsRefused(string text) => Assert.Null(ToyGrammar.ParseTextures(text));

    [Fact]
    public void FullAndTrainingCaptionsRoundTripThroughTheParser()
    {
        int full = 0, mainOnly = 0, total = 0;
        for (int i = 0; i < 1000; i++)
        {
            var scene = World0.Scene(i % 2 == 0 ? i : World.HeldOutStart + i);
            var caption = scene.FullCaption();
            Assert.Equal(caption, CaptionParser.Parse(caption.ToText()));
            Assert.Equal(caption.ToText(), CaptionParser.Parse(caption.ToText()).ToText());
            for (int variant = 0; variant < 3; variant++)
            {
                var training = World0.TrainingCaption(i, variant);
                var text = training.ToText();
                Assert.Equal(training, CaptionParser.Parse(text));
                Assert.Equal(text, CaptionParser.Parse(text).ToText());
                CaptionAssert.MentionsOnlyWhatIsThere(World0.FullCaption(i), training);
                total++;
                if (training with { Connector = BackgroundConnector.Comma } == World0.FullCaption(i)) full++;
                if (training.Main.Colour is not null && training.Main.Size is null && training.Main.Position is null && training.Second is null && training.Background is null) mainOnly++;
            }
        }
        // Partial captions dominate, but full ones and bare "a red circle" ones both occur often.
        Assert.InRange(full / (double)total, 0.05, 0.25);
        Assert.InRange(mainOnly / (double)total, 0.03, 0.2);
    }

    [Theory]
    [InlineData("a red circle", ToyShape.Circle, ToyColour.Red, null, null)]
    [InlineData("A Blue Square on the left.", ToyShape.Square, ToyColour.Blue, null, ToyPosition.Left)]
    [InlineData("an orange star at the bottom right", ToyShape.Star, ToyColour.Orange, null, ToyPosition.BottomRight)]
    [InlineData("a large heart at the top", ToyShape.Heart, null, ToySize.Large, ToyPosition.Top)]
    [InlineData("a small gray ring in the center", ToyShape.Ring, ToyColour.Gray, ToySize.Small, ToyPosition.Center)]
    public void PartialCaptionsParse(string text, ToyShape shape, ToyColour? colour, ToySize? size, ToyPosition? position)
    {
        var caption = CaptionParser.Parse(text);
        Assert.Equal(new ObjectPhrase(shape, colour, size, position), caption.Main);
        Assert.Null(caption.Second);
        Assert.Null(caption.Background);
    }

    [Fact]
    public void BackgroundsAndIdentifiersParse()
    {
        var c = CaptionParser.Parse("a sks star on a blue striped background");
        Assert.Equal(new ObjectPhrase(ToyShape.Star, Identifier: "sks"), c.Main);
        Assert.Equal(new BackgroundPhrase(ToyColour.Blue, BackgroundTexture.Striped), c.Background);
        Assert.Equal(BackgroundConnector.OnA, c.Connector);

        var two = CaptionParser.Parse("a large red zwx cross on the left and a circle, plain background");
        Assert.Equal(new ObjectPhrase(ToyShape.Cross, ToyColour.Red, ToySize.Large, ToyPosition.Left, "zwx"), two.Main);
        Assert.Equal(new ObjectPhrase(ToyShape.Circle), two.Second);
        Assert.Equal(new BackgroundPhrase(null, BackgroundTexture.Plain), two.Background);

        Assert.Equal(new BackgroundPhrase(ToyColour.Green, null), CaptionParser.Parse("a star, green background").Background);
        Assert.Equal(new BackgroundPhrase(null, BackgroundTexture.Checked), CaptionParser.Parse("a star on a checked background").Background);
        Assert.Equal("a star on an orange background", CaptionParser.Parse("a star on an orange background").ToText());
    }

    [Theory]
    [InlineData("red circle")]
    [InlineData("a red")]
    [InlineData("a circle on the middle")]
    [InlineData("a circle at the left")]
    [InlineData("a circle, background")]
    [InlineData("a circle and")]
    [InlineData("a circle big")]
    [InlineData("a circle in the snow")]
    public void TextOutsideTheGrammarIsRefusedSayingWhere(string text)
    {
        var e = Assert.Throws<CaptionParseException>(() => CaptionParser.Parse(text));
        Assert.Contains("expected", e.Message);
        Assert.False(CaptionParser.TryParse(text, out _));
    }

    [Fact]
    public void DreamBoothTemplatesAreCaptionsOfTheGrammar()
    {
        Assert.InRange(ToyDreamBoothPrompts.Templates.Count, 20, 25);
        foreach (var subject in ToySubjects.All)
            foreach (var template in ToyDreamBoothPrompts.Templates)
            {
                var caption = CaptionParser.Parse(ToyDreamBoothPrompts.Fill(template, subject));
                Assert.Equal(subject.Identifier, caption.Main.Identifier);
                Assert.Equal(subject.Class, caption.Main.Shape);
            }
    }
}
