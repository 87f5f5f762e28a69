using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Judge;

namespace DiffusionPeft.Tests.ToyWorld;

public sealed class JudgeAccuracyTests
{
    /// <summary>A render judged against its own caption and against the caption with another shape: one right of two.</summary>
    [Fact]
    public void CountsRightAndGradedPerAttribute()
    {
        var world = new World(0);
        var scene = world.Scene(0);
        var image = world.Render(0);
        var own = scene.FullCaption();
        var other = own with { Main = own.Main with { Shape = (DiffusionPeft.ToyWorld.Grammar.ToyShape)(((int)own.Main.Shape + 1) % 8) } };
        var acc = JudgeAccuracy.Of([SceneJudge.Score(image, own), SceneJudge.Score(image, other)]);
        Assert.Equal(2, acc.Count(JudgeAttribute.Shape));
        Assert.Equal(1, acc.Correct(JudgeAttribute.Shape));
        Assert.Equal(0.5, acc.Accuracy(JudgeAttribute.Shape));
        Assert.Equal(2, acc.Correct(JudgeAttribute.Colour));
    }
}
