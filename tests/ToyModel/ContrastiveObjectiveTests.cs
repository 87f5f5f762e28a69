using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Vocabulary;

namespace DiffusionPeft.Tests.ToyModel;

public sealed class ContrastiveObjectiveTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-contrastive-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private ContrastiveObjective Objective(double share, out ToyClip clip)
    {
        ToyVocabulary.Write(_dir);
        var tokenizer = ToyVocabulary.Load(_dir);
        clip = new ToyClip(ToyModelConfigs.TextEncoder(tokenizer, 32, 1), 32);
        return new ContrastiveObjective(clip, new SceneImages(new World(0), 64), tokenizer, share);
    }

    [Fact]
    public void TheLastShareOfABatchIsTheFirstScenesShapeTwins()
    {
        var objective = Objective(0.5, out var clip);
        using var _ = clip;
        var batch = new Batch(0, 0, Epoch: 2, Items: [10, 11, 12, 13, 20, 21, 22, 23]);
        var (images, captions) = objective.Pairs(batch);
        var plain = Objective(0, out var clip0).Pairs(batch);
        clip0.Dispose();
        Assert.Equal(8, captions.Count);
        for (int k = 0; k < 4; k++)
        {
            Assert.Equal(plain.Captions[k], captions[k]);
            Assert.Equal(plain.Images[k].Pixels, images[k].Pixels);
            var scene = ToyCaption.Parse(captions[k]);
            var twin = ToyCaption.Parse(captions[k + 4]);
            Assert.NotEqual(scene.Main.Shape, twin.Main.Shape);
            Assert.Equal(scene with { Main = scene.Main with { Shape = twin.Main.Shape } }, twin);
            Assert.NotEqual(images[k].Pixels, images[k + 4].Pixels);
            int changed = images[k].Pixels.Zip(images[k + 4].Pixels).Count(p => p.First != p.Second);
            Assert.True(changed < images[k].Pixels.Length / 4, $"twin {k} changed {changed} bytes: more than its object");
        }
    }

    [Fact]
    public void ShareOutsideZeroToHalfIsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ContrastiveObjective(null!, null!, null!, 0.6));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ContrastiveObjective(null!, null!, null!, -0.1));
    }

    [Fact]
    public void TheLossIsFiniteAndReachesTheTextEncoder()
    {
        var objective = Objective(0.5, out var clip);
        using var _ = clip;
        using var rng = new TrainingRng(0);
        var loss = objective.Loss(new Batch(0, 0, 0, [0, 1, 2, 3, 4, 5]), rng);
        Assert.True(float.IsFinite(loss.item<float>()));
        Assert.InRange(loss.item<float>(), 0.5, 5);   // near ln 6 = 1.79 for a random model
        loss.backward();
        Assert.True(clip.text_model.parameters().First().grad is { } g && g.abs().sum().item<float>() > 0);
    }
}
