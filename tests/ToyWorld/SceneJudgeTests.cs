using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Judge;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Scenes;
using DiffusionPeft.ToyWorld.Subjects;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.ToyWorld;

/// <summary>The held-out scenes the judge tests share, each read once clean and once blurred (σ 1 px) and noised (σ 10/255).</summary>
public sealed class HeldOutReadings
{
    public const int Count = 500;
    public readonly List<(ToyScene Scene, SceneReading Clean, SceneReading Degraded)> Items = [];

    public HeldOutReadings()
    {
        var world = new World(0);
        var items = new (ToyScene, SceneReading, SceneReading)[Count];
        Parallel.For(0, Count, i =>
        {
            var scene = world.HeldOutScene(i);
            var image = SceneRenderer.Render(scene);
            items[i] = (scene, SceneJudge.Read(image), SceneJudge.Read(ImageDegradation.BlurAndNoise(image, 1.0, 10, (ulong)i)));
        });
        Items.AddRange(items);
    }
}

public sealed class SceneJudgeTests(HeldOutReadings readings, ITestOutputHelper output) : IClassFixture<HeldOutReadings>
{
    private JudgeAccuracy Accuracy(Func<(ToyScene Scene, SceneReading Clean, SceneReading Degraded), SceneReading> reading,
        Func<ToyScene, int, ToyCaption> caption) =>
        JudgeAccuracy.Of(readings.Items.Select((item, i) => SceneJudge.Score(reading(item), caption(item.Scene, i))));

    [Fact]
    public void CleanRendersAreReadRightOnEveryAttribute()
    {
        var acc = Accuracy(r => r.Clean, (s, _) => s.FullCaption());
        output.WriteLine(acc.ToString());
        foreach (var a in Enum.GetValues<JudgeAttribute>())
            Assert.True(acc.Accuracy(a) >= 0.99, $"{a}: {acc.Accuracy(a):P1}");
        Assert.True(acc.AllCorrect >= 0.98 * HeldOutReadings.Count, acc.ToString());
        Assert.True(acc.Count(JudgeAttribute.SecondShape) > 100, "too few two-object scenes to judge");
    }

    [Fact]
    public void TheShapeConfusionOfCleanRendersIsItsDiagonalAndSaysWhatWasReadInstead()
    {
        var confusion = new ShapeConfusion();
        foreach (var (scene, clean, _) in readings.Items)
            confusion.Add(scene.Main.Shape, SceneJudge.Score(clean, scene.FullCaption()));
        var acc = Accuracy(r => r.Clean, (s, _) => s.FullCaption());
        var shapes = Enum.GetValues<ToyShape>();
        Assert.Equal(HeldOutReadings.Count, shapes.Sum(confusion.Asked));
        Assert.Equal(acc.Correct(JudgeAttribute.Shape), shapes.Sum(a => confusion.Count(a, a)));
        Assert.Equal(HeldOutReadings.Count, shapes.Select(r => (ToyShape?)r).Append(null).Sum(confusion.Read));

        // A caption asking for a square over a rendered circle: the circle is what the row records.
        var circle = readings.Items.First(i => i.Scene.Main.Shape == ToyShape.Circle && i.Scene.Second is null);
        var asked = circle.Scene.FullCaption() is var c ? c with { Main = c.Main with { Shape = ToyShape.Square } } : null!;
        var score = SceneJudge.Score(circle.Clean, asked);
        Assert.False(score.Shape);
        Assert.Equal(ToyShape.Circle, score.MainReading!.Shape);
        var one = new ShapeConfusion();
        one.Add(ToyShape.Square, score);
        Assert.Equal(1, one.Count(ToyShape.Square, ToyShape.Circle));
        var table = one.ToMarkdown();
        Assert.Contains("| square | 1 | **0** | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 1 | 0.0% |", table);
        Assert.Contains("| circle | **0** | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | – |", table);
        Assert.Contains("| all | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 1 | |", table);
    }

    [Fact]
    public void BlurredNoisyRendersAreStillReadRight()
    {
        var acc = Accuracy(r => r.Degraded, (s, _) => s.FullCaption());
        output.WriteLine(acc.ToString());
        foreach (var a in new[] { JudgeAttribute.Colour, JudgeAttribute.Position, JudgeAttribute.Size, JudgeAttribute.BackgroundColour, JudgeAttribute.BackgroundTexture })
            Assert.True(acc.Accuracy(a) >= 0.97, $"{a}: {acc.Accuracy(a):P1}");
        Assert.True(acc.Accuracy(JudgeAttribute.Shape) >= 0.95, $"shape: {acc.Accuracy(JudgeAttribute.Shape):P1}");
        Assert.True(acc.Accuracy(JudgeAttribute.SecondShape) >= 0.93, $"second shape: {acc.Accuracy(JudgeAttribute.SecondShape):P1}");
        Assert.True(acc.AllCorrect >= 0.9 * HeldOutReadings.Count, acc.ToString());
    }

    [Fact]
    public void PartialCaptionsAreScoredOnWhatTheyMention()
    {
        var world = new World(0);
        var acc = Accuracy(r => r.Clean, (s, i) => world.TrainingCaption(World.HeldOutStart + i, 7));
        foreach (var a in Enum.GetValues<JudgeAttribute>())
            if (acc.Accuracy(a) is { } v) Assert.True(v >= 0.99, $"{a}: {v:P1}");
        Assert.True(acc.Count(JudgeAttribute.Size) < HeldOutReadings.Count, "partial captions should leave sizes out");
        var bare = SceneJudge.Score(readings.Items[0].Clean, CaptionParser.Parse($"a {ToyGrammar.Word(readings.Items[0].Scene.Main.Shape)}"));
        Assert.Equal([(JudgeAttribute.Shape, true)], bare.Results);
    }

    [Fact]
    public void WrongCaptionsAreScoredWrong()
    {
        static ToyColour OtherColour(ToyScene s) => ToyPalette.ObjectColoursOn(s.Background.Colour).First(c => c != s.Main.Colour && c != s.Second?.Colour);
        var wrongColour = Accuracy(r => r.Clean, (s, _) => s.FullCaption() with { Main = s.FullCaption().Main with { Colour = OtherColour(s) } });
        var wrongShape = Accuracy(r => r.Clean, (s, _) => s.FullCaption() with { Main = s.FullCaption().Main with { Shape = (ToyShape)(((int)s.Main.Shape + 1) % 8) } });
        var wrongPosition = Accuracy(r => r.Clean, (s, _) => s.FullCaption() with { Main = s.FullCaption().Main with { Position = Opposite(s.Main.Position) } });
        var wrongBackground = Accuracy(r => r.Clean, (s, _) => s.FullCaption() with { Background = new BackgroundPhrase((ToyColour)(((int)s.Background.Colour + 1) % 10), null) });
        var wrongTexture = Accuracy(r => r.Clean, (s, _) => s.FullCaption() with { Background = new BackgroundPhrase(null, (BackgroundTexture)(((int)s.Background.Texture + 1) % 4)) });
        output.WriteLine($"wrong captions judged right: colour {wrongColour.Accuracy(JudgeAttribute.Colour):P1}, shape {wrongShape.Accuracy(JudgeAttribute.Shape):P1}, " +
            $"position {wrongPosition.Accuracy(JudgeAttribute.Position):P1}, background colour {wrongBackground.Accuracy(JudgeAttribute.BackgroundColour):P1}, " +
            $"texture {wrongTexture.Accuracy(JudgeAttribute.BackgroundTexture):P1}");
        Assert.True(wrongColour.Accuracy(JudgeAttribute.Colour) <= 0.01, wrongColour.ToString());
        Assert.True(wrongShape.Accuracy(JudgeAttribute.Shape) <= 0.01, wrongShape.ToString());
        Assert.True(wrongPosition.Accuracy(JudgeAttribute.Position) <= 0.01, wrongPosition.ToString());
        Assert.True(wrongBackground.Accuracy(JudgeAttribute.BackgroundColour) <= 0.01, wrongBackground.ToString());
        Assert.True(wrongTexture.Accuracy(JudgeAttribute.BackgroundTexture) <= 0.01, wrongTexture.ToString());
        Assert.True(wrongColour.AllCorrect <= 5, "a caption with a wrong colour must not pass as a whole");
    }

    /// <summary>The cell mirrored through the centre; the centre itself becomes the top left.</summary>
    private static ToyPosition Opposite(ToyPosition p) => p == ToyPosition.Center ? ToyPosition.TopLeft : (ToyPosition)(8 - (int)p);

    [Fact]
    public void AnObjectTheImageLacksScoresWrong()
    {
        var plain = SceneRenderer.Render(new ToyScene(new SceneBackground(BackgroundTexture.Plain, ToyColour.Blue),
            new SceneObject(ToyShape.Star, ToyColour.Yellow, ToySize.Large, ToyPosition.Center, 128, 128, 108)));
        var score = SceneJudge.Score(plain, "a large yellow star in the center and a small red circle at the top left, plain blue background");
        Assert.Equal(1, score.ObjectsFound);
        Assert.Equal(new ObjectScore(true, true, true, true), score.Main);
        Assert.Equal(new ObjectScore(false, false, false, false), score.Second);
        Assert.True(score.Background);

        var empty = SceneJudge.Read(BackgroundPainter.Paint(new SceneBackground(BackgroundTexture.Checked, ToyColour.Green, PhaseX: 3, PhaseY: 5)));
        Assert.Empty(empty.Objects);
        Assert.Equal((BackgroundTexture.Checked, ToyColour.Green), (empty.Background.Texture, empty.Background.Colour));
        var none = SceneJudge.Score(empty, CaptionParser.Parse("a red circle, green checked background"));
        Assert.Equal(new ObjectScore(false, false, null, null), none.Main);
        Assert.True(none.Background);
    }

    [Fact]
    public void SubjectsReadAsTheirClassShape()
    {
        var world = new World(0);
        int right = 0, total = 0;
        foreach (var subject in ToySubjects.All)
            for (int i = 0; i < 6; i++)
            {
                var scene = world.SubjectHeldOut(subject, i);
                var score = SceneJudge.Score(SceneRenderer.Render(scene), scene.FullCaption());
                total++;
                if (score.AllCorrect) right++;
            }
        output.WriteLine($"subjects: {right}/{total} read right on shape, size, position and background");
        Assert.True(right >= 0.9 * total, $"{right}/{total}");
    }

    [Fact]
    public void ImagesOfAnotherSizeAreRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => SceneJudge.Read(RgbImage.Blank(32, 32)));
        Assert.Contains("64x64", e.Message);
    }
}
