using DiffusionPeft.Experiments.ToyClipShape;

namespace DiffusionPeft.Tests.Experiments;

public sealed class ToyClipShapeExperimentTests
{
    private static readonly ToyClipShapeConfig OneStep = new() { Steps = 1, WarmupSteps = 1, Batch = 8, TrainScenes = 16, HeldOutScenes = 16, Threads = 1 };

    [Fact]
    public void ShapeNegativesAreExtraImageToTextColumnsAndTheMeasuresAreInRange()
    {
        var recipe = ToyClipShapeExperiment.Run(ToyClipShapeArm.All[0], OneStep, TextWriter.Null);
        var negatives = ToyClipShapeExperiment.Run(ToyClipShapeArm.All[1], OneStep, TextWriter.Null);
        // Same seed, same initial weights and batch: the first loss differs only by the 3 extra columns per image,
        // which at initialisation (all logits near equal) raise the image→text term from about ln 8 towards ln 11.
        Assert.InRange(recipe.FinalLoss, Math.Log(8) - 0.3, Math.Log(8) + 0.3);
        Assert.InRange(negatives.FinalLoss - recipe.FinalLoss, 0.05, (Math.Log(11) - Math.Log(8)) / 2 + 0.1);
        var strideOne = ToyClipShapeExperiment.Run(ToyClipShapeArm.All[2], OneStep, TextWriter.Null);
        Assert.InRange(strideOne.FinalLoss - recipe.FinalLoss, -0.5, 0.5);   // another tower, the same negatives: a loss of the same size
        foreach (var r in new[] { recipe, negatives, strideOne })
        {
            Assert.Equal(16, r.ShapeScenes);
            Assert.InRange(r.ShapeRight, 0, 16);
            Assert.InRange(r.CaptionTop1, 0, 1);
            Assert.True(r.ShapeChange > 0 && r.ColourChange > 0, "changing a caption word moves the text encoder's states");
        }
    }
}
