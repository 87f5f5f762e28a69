using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>
/// --masked-loss: NAME-masklabel.png masks found and checked by the scan, cropped and flipped with their image and
/// averaged down to the latents, and the loss weighted by them (kohya's apply_masked_loss, OneTrainer's unmasked weight).
/// </summary>
public sealed class MaskedLossTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-mask-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string Put(string folder, string name, string content)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, folder)).FullName;
        File.WriteAllText(Path.Combine(dir, name), content);
        return dir;
    }

    [Fact]
    public void TheMaskedMseWeightsEachElementAndTheUnmaskedWeightLiftsWhatTheMaskLeavesOut()
    {
        using var pred = tensor(new float[] { 1, 2, 3, 4, 0, 0, 0, 0 }, [2, 2, 1, 2]);    // B=2, C=2, h=1, w=2
        using var target = zeros(2, 2, 1, 2);
        using var mask = tensor(new float[] { 1, 0, 0.5f, 0.25f }, [2, 1, 1, 2]);
        // sample 0: squared errors [[1, 4], [9, 16]] · mask [1, 0] → (1 + 9) / 4; sample 1: zeros → 0; batch mean 1.25
        Assert.Equal(1.25, DiffusionLossTerms.WeightedMse(pred, target, mask: mask).item<float>(), 6);
        using var weights = tensor(new float[] { 2, 1 });
        Assert.Equal(2.5, DiffusionLossTerms.WeightedMse(pred, target, weights, mask).item<float>(), 6);
        using var ones1 = ones(2, 1, 1, 2);
        Assert.Equal(DiffusionLossTerms.WeightedMse(pred, target).item<float>(), DiffusionLossTerms.WeightedMse(pred, target, mask: ones1).item<float>());

        using var lifted = DiffusionLossTerms.MaskWeights(mask, 0.3);   // OneTrainer: clamp(mask, unmasked_weight, 1)
        Assert.Equal(new[] { 1f, 0.3f, 0.5f, 0.3f }, lifted.data<float>().ToArray(), (a, b) => Math.Abs(a - b) < 1e-6);
        using var plain = DiffusionLossTerms.MaskWeights(mask, 0);
        Assert.Equal(mask.data<float>().ToArray(), plain.data<float>().ToArray());
    }

    [Fact]
    public void TheScanPairsMasksWithTheirImagesAndNeverTrainsOnAMask()
    {
        var dir = Put("a", "x.png", "64 64");
        Put("a", "x-masklabel.png", "64 64 left");
        Put("a", "y.jpg", "64 64");
        Put("a", "z.png", "32 32");
        Put("a", "z-masklabel.png", "32 32 left");

        var plain = InstanceDataset.Scan(dir, "p", new FakeDecoder());
        Assert.Equal(["x.png", "y.jpg", "z.png"], plain.Images.Select(i => Path.GetFileName(i.Path)));   // masks are never images
        Assert.All(plain.Images, i => Assert.Null(i.MaskPath));                                          // nor looked at without --masked-loss

        var warnings = new List<string>();
        var masked = InstanceDataset.Scan(dir, "p", new FakeDecoder(), warnings.Add, masks: true);
        Assert.Equal([Path.Combine(dir, "x-masklabel.png"), null, Path.Combine(dir, "z-masklabel.png")], masked.Images.Select(i => i.MaskPath));
        Assert.Contains(warnings, w => w.Contains("1 of 3 images") && w.Contains("y.jpg") && w.Contains("whole image"));

        var wrongSize = Put("b", "x.png", "64 64");
        Put("b", "x-masklabel.png", "64 32 left");
        var e = Assert.Throws<InvalidDataException>(() => InstanceDataset.Scan(wrongSize, "p", new FakeDecoder(), masks: true));
        Assert.Contains("x-masklabel.png", e.Message);
        Assert.Contains("64x32 mask for the 64x64 image x.png", e.Message);

        Put("b", "x-masklabel.png", "bad");
        Assert.Contains("does not decode", Assert.Throws<InvalidDataException>(() => InstanceDataset.Scan(wrongSize, "p", new FakeDecoder(), masks: true)).Message);

        var none = Put("c", "x.png", "64 64");
        Assert.Contains("has no mask", Assert.Throws<NoTrainingImagesException>(() => InstanceDataset.Scan(none, "p", new FakeDecoder(), masks: true)).Message);
    }

    private TrainConfig Config(string images, bool masked, double unmasked = 0, bool flip = false) => new()
    {
        Model = "toy", Images = images, Prompt = "a photo of sks dog", Out = Path.Combine(_dir, "run"), Resolution = 64, Batch = 2, Lr = 0.05,
        Steps = 10, Seed = 3, Flip = flip, CheckpointEvery = 0, MaskedLoss = masked, UnmaskedWeight = unmasked, CacheLatents = LatentCacheMode.Memory,
    };

    private static TrainingExamples Examples(TrainConfig c, ToyVae vae, TensorCache cache) =>
        NoisePredictionObjectiveTests.Examples(c, c.Images, c.Prompt, vae, new ToyText(), cache, cache, masks: c.MaskedLoss);

    [Fact]
    public void MasksAreCroppedAndFlippedWithTheirImageAndAveragedDownToTheLatents()
    {
        var dir = Put("m", "a.png", "128 64");            // resized to 128x64 (already), centre-cropped to 64x64: columns 32..95
        Put("m", "a-masklabel.png", "128 64 left68");   // white columns 0..67
        Put("m", "b.png", "64 64");                     // no mask: ones
        using var vae = new ToyVae();
        using var cache = new TensorCache(LatentCacheMode.Memory, _dir);
        var c = Config(dir, masked: true, flip: true);
        var examples = Examples(c, vae, cache);
        for (int epoch = 0; epoch < 6; epoch++)
        {
            using var masks = examples.Masks([0, 1], epoch, 8, 8, CPU);
            Assert.Equal(new long[] { 2, 1, 8, 8 }, masks.shape);
            // The crop keeps image columns 32..95: latent cells 0..3 white, cell 4 (columns 64..71) half white, the rest
            // black, averaged by area; mirrored when the plan flips.
            var row = masks[0, 0, 3].data<float>().ToArray();
            float[] expected = [1, 1, 1, 1, 0.5f, 0, 0, 0];
            Assert.Equal(examples.PlanOf(0, epoch).Flip ? expected.Reverse() : expected, row);
            Assert.All(masks[1].data<float>().ToArray(), v => Assert.Equal(1f, v));
        }
        Assert.True(Enumerable.Range(0, 6).Select(e => examples.PlanOf(0, e).Flip).Distinct().Count() == 2, "both flips were drawn");
    }

    private double[] Losses(TrainConfig c, int batches) =>
        NoisePredictionObjectiveTests.Losses(c, LatentCacheMode.Memory, _dir, PredictionType.Epsilon, batches, out _);

    [Fact]
    public void TheObjectiveCountsOnlyWhatTheMaskKeeps()
    {
        var white = Put("w", "a.png", "64 64");
        Put("w", "a-masklabel.png", "64 64 left");
        Put("w", "b.png", "64 64");
        var unmasked = Losses(Config(white, masked: false), 4);
        Assert.All(unmasked, l => Assert.True(l > 0));

        // Every batch holds a (half masked) and b (no mask: all cells count).
        var masked = Losses(Config(white, masked: true), 4);
        var weighted = Losses(Config(white, masked: true, unmasked: 1), 4);
        Assert.Equal(unmasked, weighted);                               // unmasked weight 1: every cell counts fully
        Assert.All(masked.Zip(unmasked), p => Assert.True(p.First < p.Second, $"masked {p.First} vs {p.Second}"));
        var half = Losses(Config(white, masked: true, unmasked: 0.5), 4);
        Assert.All(half.Zip(masked, unmasked), p => Assert.InRange(p.First, p.Second, p.Third));
    }

    [Fact]
    public void DpeftTrainReadsPngMasksAndABlackMaskGivesZeroLoss()
    {
        var images = AdapterSessionTests.SubjectImages(_dir);
        foreach (var png in Directory.GetFiles(images, "*.png").Where(f => !InstanceDataset.IsMask(f)))
            PngWriter.Write(Path.ChangeExtension(png, null) + InstanceDataset.MaskSuffix, new RgbImage(64, 64, new byte[64 * 64 * 3]));
        var o = new StringWriter(); var e = new StringWriter();
        int code = DiffusionPeft.Cli.Program.Run(["train", "--images", images, "--prompt", "a photo of sks ball", "--out", Path.Combine(_dir, "run"),
            "--rank", "2", "--steps", "3", "--batch", "1", "--resolution", "64", "--seed", "7", "--masked-loss", "true", "--quiet"], o, e);
        Assert.True(code == 0, e.ToString());
        var losses = File.ReadAllLines(Path.Combine(_dir, "run", "log.jsonl"))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("loss").GetDouble()).ToArray();
        Assert.Equal([0.0, 0.0, 0.0], losses);
    }
}
