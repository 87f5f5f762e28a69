using System.Security.Cryptography;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Scenes;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.Tests.ToyWorld;

public sealed class ToyWorldSceneTests
{
    private static readonly World World0 = new(0);

    private static string Hash(byte[] pixels) => Convert.ToHexStringLower(SHA256.HashData(pixels));

    [Theory]
    [InlineData(0L, 0L, "b9fee524ce1e935a1d37fbdffe5856a32bcaa96dcf1341ee936bd43607cb933c", "a large orange square on the left, plain pink background")]
    [InlineData(0L, 1L, "af8e8ea315b61bfceaec5dab67d1dab32d28ed87a8b2cf1c8ce65dca97bec819", "a large green triangle at the top left, orange gradient background")]
    [InlineData(0L, 7L, "9350b97c48b3dceb12c3ecd81a25952e0610e71b333c249efd118f1a6c3f5b1f", "a small blue cross at the bottom right and a medium orange star at the top, white striped background")]
    [InlineData(0L, World.HeldOutStart + 3, "94edd1019dc642909d4b86f084b1cc8708c3964a6f304014ff9122cd187902b8", "a small green cross at the bottom right, pink checked background")]
    [InlineData(2024L, 5L, "95e73b2641884ca6ac1860f85f5d646257ab3337980686b21c0ffeaf5ff026fb", "a large pink star at the top right and a small red heart at the bottom, yellow gradient background")]
    public void ScenesArePinnedByPixelHashAndCaption(long seed, long index, string sha256, string caption)
    {
        var world = new World(seed);
        Assert.Equal(caption, world.FullCaption(index).ToText());
        Assert.Equal(sha256, Hash(world.Render(index).Pixels));
    }

    [Fact]
    public void SubjectScenesArePinnedToo()
    {
        var scene = World0.SubjectInstance(ToySubjects.All[0], 0);
        Assert.Equal("a medium sks star at the bottom left, plain pink background", scene.FullCaption().ToText());
        Assert.Equal("ad909ce39de3ef3e652f9c1a135e9a4c4321649af46382afcafc9eb4ac36f882", Hash(SceneRenderer.Render(scene).Pixels));
    }

    [Fact]
    public void ASceneIsAPureFunctionOfSeedAndIndex()
    {
        Assert.Equal(World0.Render(42).Pixels, new World(0).Render(42).Pixels);
        Assert.Equal(World0.Scene(42), new World(0).Scene(42));
        Assert.NotEqual(World0.Render(42).Pixels, new World(1).Render(42).Pixels);
        Assert.Equal(World0.TrainingCaption(42, 3), new World(0).TrainingCaption(42, 3));
    }

    [Fact]
    public void OutOfRangeSeedsAndIndicesAreRefusedWithTheRange()
    {
        var seed = Assert.Throws<ArgumentOutOfRangeException>(() => new World(-1));
        Assert.Contains("0..2147483647", seed.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new World(1L << 31));
        var index = Assert.Throws<ArgumentOutOfRangeException>(() => World0.Scene(-1));
        Assert.Contains("0..2147483647", index.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => World0.Scene(1L << 31));
        Assert.Throws<ArgumentOutOfRangeException>(() => World0.TrainScene(World.HeldOutStart));
        Assert.Throws<ArgumentOutOfRangeException>(() => World0.HeldOutScene(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => World0.TrainingCaption(-5));
        Assert.NotNull(new World(World.MaxSeed).Scene(World.MaxIndex));
    }

    [Fact]
    public void ObjectsStandOutFitInTheImageAndKeepApart()
    {
        int twoObjects = 0;
        for (int i = 0; i < 2000; i++)
        {
            var scene = World0.Scene(i);
            foreach (var o in scene.Objects)
            {
                Assert.True(ToyPalette.StandsOut(ToyPalette.Of(o.Colour), scene.Background.Colour), $"scene {i}: {o.Colour} on {scene.Background.Colour}");
                var (l, t, r, b) = o.HiResBox;
                Assert.True(l >= 0 && t >= 0 && r <= ToyGeometry.HiResSize && b <= ToyGeometry.HiResSize, $"scene {i}: {o} leaves the image");
                Assert.Equal(o.Position, ToyGeometry.PositionOf(o.CentreX, o.CentreY));
                Assert.Equal(o.Size, ToyGeometry.SizeOf(o.Extent));
                Assert.Null(o.Subject);
            }
            if (scene.Second is { } second)
            {
                twoObjects++;
                Assert.True(SceneSampler.Apart(scene.Main, second), $"scene {i} objects touch");
                Assert.NotEqual(scene.Main.Colour, second.Colour);
                Assert.NotEqual(scene.Main.Position, second.Position);
            }
        }
        Assert.InRange(twoObjects, 550, 750); // 35% asked for, a few have no room
    }

    [Fact]
    public void HeldOutCombinationsNeverOccurInTraining()
    {
        for (int i = 0; i < 3000; i++)
        {
            var train = World0.TrainScene(i);
            Assert.Equal(SceneSplit.Train, SceneSampler.SplitOf(0, train.Main, train.Background));
        }
        for (int i = 0; i < 300; i++)
        {
            var heldOut = World0.HeldOutScene(i);
            Assert.Equal(SceneSplit.HeldOut, SceneSampler.SplitOf(0, heldOut.Main, heldOut.Background));
        }
        Assert.Equal(SceneSplit.HeldOut, World.SplitOf(World.HeldOutStart));
        Assert.Equal(SceneSplit.Train, World.SplitOf(World.HeldOutStart - 1));
    }

    [Fact]
    public void PlainScenesAreOneLargeObjectOnAPlainBackgroundAndKeepTheSplit()
    {
        var train = Enumerable.Range(0, 2000).Select(i => World0.PlainScene(i)).ToList();
        Assert.All(train, s =>
        {
            Assert.Equal((BackgroundTexture.Plain, ToySize.Large), (s.Background.Texture, s.Main.Size));
            Assert.Null(s.Second);
            Assert.Contains(s.Main.Colour, ToyPalette.ObjectColoursOn(s.Background.Colour));
            Assert.Equal(SceneSplit.Train, SceneSampler.SplitOf(0, s.Main, s.Background));
        });
        Assert.Equal(Enum.GetValues<ToyShape>().Length, train.Select(s => s.Main.Shape).Distinct().Count());
        Assert.Equal(9, train.Select(s => s.Main.Position).Distinct().Count());
        Assert.Equal(ToyPalette.All.Count, train.Select(s => s.Background.Colour).Distinct().Count());
        // Each shape about 1/8 of the scenes (250 ± 5σ).
        Assert.All(train.GroupBy(s => s.Main.Shape), g => Assert.InRange(g.Count(), 175, 325));
        for (int i = 0; i < 100; i++)
        {
            var heldOut = World0.PlainScene(World.HeldOutStart + i);
            Assert.Equal(SceneSplit.HeldOut, SceneSampler.SplitOf(0, heldOut.Main, heldOut.Background));
        }
        var mixed = Enumerable.Range(0, 300).Select(i => World0.PlainScene(i, [ToySize.Small, ToySize.Medium])).ToList();
        Assert.Equal([ToySize.Small, ToySize.Medium], mixed.Select(s => s.Main.Size).Distinct().Order());   // other sizes when asked
        Assert.All(mixed, s => Assert.Equal(BackgroundTexture.Plain, s.Background.Texture));
        Assert.Equal(World0.PlainScene(5), new World(0).PlainScene(5));
        Assert.NotEqual(World0.PlainScene(5), new World(1).PlainScene(5));
    }

    [Fact]
    public void PlainScenesOnOtherTexturesKeepTheirObjectAloneAndTheSplit()
    {
        // One texture draws nothing for it: [Plain] is the plain scenes the experiments and the recipe were trained on.
        Assert.All(Enumerable.Range(0, 50), i => Assert.Equal(World0.PlainScene(i), World0.PlainScene(i, null, [BackgroundTexture.Plain])));
        BackgroundTexture[] all = [BackgroundTexture.Plain, BackgroundTexture.Gradient, BackgroundTexture.Striped, BackgroundTexture.Checked];
        var textured = Enumerable.Range(0, 800).Select(i => World0.PlainScene(i, null, all)).ToList();
        Assert.All(textured, s =>
        {
            Assert.Equal(ToySize.Large, s.Main.Size);
            Assert.Null(s.Second);
            Assert.Contains(s.Main.Colour, ToyPalette.ObjectColoursOn(s.Background.Colour));
            Assert.Equal(SceneSplit.Train, SceneSampler.SplitOf(0, s.Main, s.Background));
        });
        // Each texture about a quarter (200 ± 5σ).
        Assert.All(textured.GroupBy(s => s.Background.Texture), g => Assert.InRange(g.Count(), 140, 260));
        Assert.Equal(4, textured.Select(s => s.Background.Texture).Distinct().Count());
        Assert.All(Enumerable.Range(0, 100).Select(i => World0.PlainScene(i, [ToySize.Medium], [BackgroundTexture.Striped])),
            s => Assert.Equal((BackgroundTexture.Striped, ToySize.Medium), (s.Background.Texture, s.Main.Size)));
        for (int i = 0; i < 100; i++)
        {
            var heldOut = World0.PlainScene(World.HeldOutStart + i, null, all);
            Assert.Equal(SceneSplit.HeldOut, SceneSampler.SplitOf(0, heldOut.Main, heldOut.Background));
        }
        Assert.Throws<ArgumentException>(() => World0.PlainScene(0, null, []));
    }

    [Fact]
    public void PlainScenesTrainingCaptionsLeaveAttributesOutButNeverTheShape()
    {
        BackgroundTexture[] textures = [BackgroundTexture.Plain, BackgroundTexture.Striped];
        var captions = Enumerable.Range(0, 400).Select(i => (Scene: World0.PlainScene(i, null, textures), Caption: World0.PlainTrainingCaption(i, null, textures))).ToList();
        Assert.All(captions, c =>
        {
            var full = c.Scene.FullCaption();
            Assert.Equal(full.Main.Shape, c.Caption.Main.Shape);
            Assert.Null(c.Caption.Second);
            Assert.True(c.Caption.Main.Colour is null || c.Caption.Main.Colour == full.Main.Colour);
            Assert.True(c.Caption.Main.Position is null || c.Caption.Main.Position == full.Main.Position);
        });
        // The training captions' rates (position kept 65%: 260 ± 5σ of 400), and about a fifth complete.
        Assert.InRange(captions.Count(c => c.Caption.Main.Position is not null), 212, 308);
        Assert.InRange(captions.Count(c => c.Caption.ToText() == c.Scene.FullCaption().ToText()), 20, 110);
        Assert.Equal(World0.PlainTrainingCaption(7, null, textures), new World(0).PlainTrainingCaption(7, null, textures));
    }

    [Fact]
    public void EveryAttributeValueOccurs()
    {
        var scenes = Enumerable.Range(0, 2000).Select(i => World0.Scene(i)).ToList();
        Assert.Equal(Enum.GetValues<ToyShape>().Length, scenes.Select(s => s.Main.Shape).Distinct().Count());
        Assert.Equal(ToyPalette.All.Count, scenes.Select(s => s.Main.Colour).Distinct().Count());
        Assert.Equal(9, scenes.Select(s => s.Main.Position).Distinct().Count());
        Assert.Equal(3, scenes.Select(s => s.Main.Size).Distinct().Count());
        Assert.Equal(4, scenes.Select(s => s.Background.Texture).Distinct().Count());
        Assert.Equal(ToyPalette.All.Count, scenes.Select(s => s.Background.Colour).Distinct().Count());
    }

    [Fact]
    public void APromptRangeFromALaterSceneIsTheTailOfTheLongerRange()
    {
        Assert.Equal(World0.HeldOutPrompts(5).Skip(6), World0.HeldOutPrompts(2, first: 3));
        Assert.Equal(World.HeldOutStart + 3, World0.HeldOutPrompts(1, first: 3)[0].SceneIndex);
        Assert.Equal(World0.TrainingPrompts(4).Skip(2), World0.TrainingPrompts(3, first: 1).Take(6));
        Assert.Equal(5, World0.TrainingPrompts(1, first: 5)[1].SceneIndex);
        // Past either split's end, or before its start: refused, naming the range.
        var late = Assert.Throws<ArgumentOutOfRangeException>(() => World0.TrainingPrompts(2, first: World.HeldOutStart - 1));
        Assert.Contains("do not fit", late.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => World0.HeldOutPrompts(1, first: World.MaxIndex - World.HeldOutStart + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => World0.HeldOutPrompts(1, first: -1));
        Assert.Single(World0.HeldOutPrompts(1, first: World.MaxIndex - World.HeldOutStart), p => p.IsFull);
    }

    [Fact]
    public void HeldOutPromptsHaveAFullAndAPartialCaptionPerScene()
    {
        var prompts = World0.HeldOutPrompts(50);
        Assert.Equal(100, prompts.Count);
        for (int i = 0; i < 50; i++)
        {
            var full = CaptionParser.Parse(prompts[2 * i].Text);
            var partial = CaptionParser.Parse(prompts[2 * i + 1].Text);
            Assert.True(prompts[2 * i].IsFull);
            Assert.False(prompts[2 * i + 1].IsFull);
            Assert.Equal(World.HeldOutStart + i, prompts[2 * i].SceneIndex);
            Assert.Equal(World0.Scene(prompts[2 * i].SceneIndex).FullCaption(), full);
            Assert.NotEqual(full, partial with { Connector = BackgroundConnector.Comma });
            CaptionAssert.MentionsOnlyWhatIsThere(full, partial);
        }
    }
}
