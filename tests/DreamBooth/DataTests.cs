using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>
/// Decodes "images" whose file content is "W H" (filled with a gradient), or "W H left" / "W H leftN" (white left half
/// or left N columns, black elsewhere, as a mask); files containing "bad" throw.
/// </summary>
internal sealed class FakeDecoder : IImageDecoder
{
    public List<string> Calls { get; } = [];

    public DecodedImage Decode(string path)
    {
        Calls.Add(Path.GetFileName(path));
        var text = File.ReadAllText(path);
        if (text.Contains("bad")) throw new InvalidDataException($"{path}: not an image (Unimplemented)");
        var parts = text.Split(' ');
        int w = int.Parse(parts[0]), h = int.Parse(parts[1]);
        var rgb = new byte[w * h * 3];
        int? white = parts.Length > 2 && parts[2].StartsWith("left") ? (parts[2] == "left" ? w / 2 : int.Parse(parts[2][4..])) : null;
        for (int i = 0; i < rgb.Length; i++) rgb[i] = white is { } n ? (byte)(i / 3 % w < n ? 255 : 0) : (byte)(i * 7 % 256);
        return new DecodedImage(w, h, rgb);
    }
}

public sealed class InstanceDatasetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-data-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private void Put(string name, string content) => File.WriteAllText(Path.Combine(_dir, name), content);

    [Fact]
    public void ScansImagesCaptionsAndSkipsUndecodableFilesWithAWarning()
    {
        Put("a.JPG", "64 48");
        Put("b.png", "32 32");
        Put("b.txt", "  a photo of sks dog on grass \n");
        Put("c.webp", "10 20");
        Put("d.jpeg", "8 8");
        Put("broken.png", "bad data");
        Put("notes.txt", "not a caption of anything");
        Put("e.gif", "5 5");
        var warnings = new List<string>();
        var ds = InstanceDataset.Scan(_dir, "a photo of sks dog", new FakeDecoder(), warnings.Add);

        Assert.Equal(new[] { "a.JPG", "b.png", "c.webp", "d.jpeg" }, ds.Images.Select(i => Path.GetFileName(i.Path)));
        Assert.Equal("a photo of sks dog", ds[0].Caption);
        Assert.Equal("a photo of sks dog on grass", ds[1].Caption);
        Assert.Equal((64, 48), (ds[0].Width, ds[0].Height));
        Assert.Equal((10, 20), (ds[2].Width, ds[2].Height));
        var warning = Assert.Single(warnings);
        Assert.Contains(Path.Combine(_dir, "broken.png"), warning);
        Assert.Single(ds.Skipped);
    }

    [Fact]
    public void EmptyOrUndecodableFoldersAreClearErrors()
    {
        var empty = Assert.Throws<NoTrainingImagesException>(() => InstanceDataset.Scan(_dir, "p", new FakeDecoder()));
        Assert.Contains(_dir, empty.Message);
        Assert.Contains("has no .jpg, .jpeg, .png or .webp files", empty.Message);

        Put("x.png", "bad");
        Put("y.jpg", "bad too");
        var none = Assert.Throws<NoTrainingImagesException>(() => InstanceDataset.Scan(_dir, "p", new FakeDecoder()));
        Assert.Contains("none of its 2 image files decodes (x.png, y.jpg)", none.Message);

        var missing = Assert.Throws<DirectoryNotFoundException>(() => InstanceDataset.Scan(Path.Combine(_dir, "nope"), "p", new FakeDecoder()));
        Assert.Contains("nope", missing.Message);
    }
}

public sealed class TrainingImageTransformTests
{
    private static DecodedImage Image(int w, int h, Func<int, int, int, byte> value)
    {
        var rgb = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) rgb[(y * w + x) * 3 + c] = value(x, y, c);
        return new DecodedImage(w, h, rgb);
    }

    [Fact]
    public void PlanCoversTheTargetAndCentersTheCrop()
    {
        var p = TrainingImageTransform.Plan(600, 400, 512, 512, CropMode.Center, false, 0, 0, 0);
        Assert.Equal(new CropPlan(768, 512, 128, 0, 512, 512, false), p);
        var q = TrainingImageTransform.Plan(300, 900, 256, 384, CropMode.Center, false, 0, 0, 0);
        Assert.Equal((256, 768, 0, 192), (q.ResizedWidth, q.ResizedHeight, q.Left, q.Top));
    }

    [Fact]
    public void RandomCropAndFlipAreKeyedBySeedEpochAndItem()
    {
        var plans = Enumerable.Range(0, 200).Select(i => TrainingImageTransform.Plan(600, 400, 512, 512, CropMode.Random, true, 7, 1, i)).ToArray();
        Assert.All(plans, p => Assert.InRange(p.Left, 0, 256));
        Assert.All(plans, p => Assert.Equal(0, p.Top));
        Assert.True(plans.Select(p => p.Left).Distinct().Count() > 50);
        Assert.InRange(plans.Count(p => p.Flip), 70, 130);
        Assert.Equal(plans[5], TrainingImageTransform.Plan(600, 400, 512, 512, CropMode.Random, true, 7, 1, 5));
        Assert.NotEqual(plans.Select(p => p.Left), Enumerable.Range(0, 200).Select(i => TrainingImageTransform.Plan(600, 400, 512, 512, CropMode.Random, true, 8, 1, i).Left));
    }

    [Fact]
    public void CropsFlipsAndScalesToMinusOneOne()
    {
        var img = Image(4, 2, (x, y, c) => (byte)(10 * x + 100 * y + c));
        using var t = TrainingImageTransform.ToTensor(img, new CropPlan(4, 2, 1, 0, 2, 2, false));
        Assert.Equal(new long[] { 3, 2, 2 }, t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        // channel 1, row 1, column 0 of the crop = source x 1, y 1: 10 + 100 + 1 = 111.
        Assert.Equal(111f / 255f * 2f - 1f, t[1, 1, 0].item<float>(), 6);
        using var f = TrainingImageTransform.ToTensor(img, new CropPlan(4, 2, 1, 0, 2, 2, true));
        Assert.Equal(t[0, 0, 0].item<float>(), f[0, 0, 1].item<float>());
        Assert.Equal(t[2, 1, 1].item<float>(), f[2, 1, 0].item<float>());
        Assert.True(t.min().item<float>() >= -1f && t.max().item<float>() <= 1f);
    }

    [Fact]
    public void DownscaleIsAntialiasedAndExactOnRampsAndConstants()
    {
        // A symmetric normalized kernel reproduces a linear ramp where its window (±16 px at 8× down) fits inside the image.
        var ramp = Image(64, 64, (x, _, _) => (byte)(2 * x + 40));
        using var t = TrainingImageTransform.ToTensor(ramp, new CropPlan(8, 8, 0, 0, 8, 8, false));
        for (int j = 2; j <= 5; j++)
            Assert.Equal((2 * (8 * j + 3.5) + 40) / 255.0 * 2 - 1, t[0, 4, j].item<float>(), 4);
        // The highest frequency (a 1-px checkerboard) averages to mid-gray instead of aliasing.
        var checker = Image(64, 64, (x, y, _) => (byte)((x + y) % 2 == 0 ? 0 : 255));
        using var c = TrainingImageTransform.ToTensor(checker, new CropPlan(16, 16, 0, 0, 16, 16, false));
        Assert.True(c.abs().max().item<float>() < 0.02f, $"checkerboard → {c.abs().max().item<float>()}");
        // Upscaling keeps a constant image constant.
        var flat = Image(2, 2, (_, _, ch) => (byte)(50 + ch));
        using var up = TrainingImageTransform.ToTensor(flat, new CropPlan(6, 6, 1, 1, 4, 4, false));
        Assert.Equal(new long[] { 3, 4, 4 }, up.shape);
        Assert.Equal(51f / 255f * 2f - 1f, up[1].min().item<float>(), 5);
        Assert.Equal(51f / 255f * 2f - 1f, up[1].max().item<float>(), 5);
    }
}

public sealed class AspectBucketsTests
{
    [Fact]
    public void MatchesKohyaBucketsAt512()
    {
        var b = new AspectBuckets(512);
        Assert.Equal(17, b.Buckets.Count);
        Assert.All(b.Buckets, x => Assert.True(x.Width % 64 == 0 && x.Height % 64 == 0 && x.Width * x.Height <= 512 * 512));
        Assert.All(b.Buckets, x => Assert.InRange(x.Width, 256, 1024));
        foreach (var (w, h) in new[] { (256, 1024), (320, 768), (384, 640), (448, 576), (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (1024, 256) })
            Assert.Contains(new Bucket(w, h), b.Buckets);
        Assert.Equal(new Bucket(256, 832), b.Buckets[0]);
    }

    [Fact]
    public void ImagesGoToTheNearestAspect()
    {
        var b = new AspectBuckets(512);
        Assert.Equal(new Bucket(640, 384), b.For(600, 400));  // 1.5: 640/384 = 1.667 beats 576/448 = 1.286
        Assert.Equal(new Bucket(512, 512), b.For(1000, 1010));
        Assert.Equal(new Bucket(384, 640), b.For(400, 600));
        Assert.Equal(new Bucket(1024, 256), b.For(5000, 100));
    }
}

public sealed class DataOrderTests
{
    private static List<(int Epoch, int[] Items)> Draw(DataOrder o, int n) => Enumerable.Range(0, n).Select(_ => o.Next()).ToList();

    [Fact]
    public void EachEpochVisitsEveryItemOnceInBatches()
    {
        var order = new DataOrder(10, 3, seed: 1);
        var draws = Draw(order, 8); // 4 batches per epoch (3+3+3+1)
        foreach (var epoch in new[] { 0, 1 })
        {
            var batches = draws.Where(d => d.Epoch == epoch).Select(d => d.Items).ToList();
            Assert.Equal(4, batches.Count);
            Assert.Equal(Enumerable.Range(0, 10), batches.SelectMany(b => b).Order());
            Assert.Equal(new[] { 1, 3, 3, 3 }, batches.Select(b => b.Length).Order());
        }
        Assert.NotEqual(draws[0].Items.Concat(draws[1].Items), draws[4].Items.Concat(draws[5].Items)); // epochs differ
    }

    [Fact]
    public void SameSeedSameOrderAndResumeContinuesExactly()
    {
        var a = new DataOrder(7, 2, seed: 42);
        var b = new DataOrder(7, 2, seed: 42);
        var c = new DataOrder(7, 2, seed: 43);
        var da = Draw(a, 9);
        Assert.Equal(da.SelectMany(d => d.Items), Draw(b, 9).SelectMany(d => d.Items));
        Assert.NotEqual(da.SelectMany(d => d.Items), Draw(c, 9).SelectMany(d => d.Items));

        var resumed = new DataOrder(7, 2, seed: 42, a.State);
        Assert.Equal(new DataOrderState(2, 1), a.State); // 4 batches per epoch, 9 drawn
        Assert.Equal(Draw(a, 13).SelectMany(d => d.Items), Draw(resumed, 13).SelectMany(d => d.Items));
    }

    [Fact]
    public void BatchesNeverMixBuckets()
    {
        var buckets = new[] { 0, 1, 0, 2, 1, 0, 0, 1, 2, 0 };
        var order = new DataOrder(buckets, 2, seed: 3);
        foreach (var (_, items) in Draw(order, 30))
            Assert.Single(items.Select(i => buckets[i]).Distinct());
    }
}
