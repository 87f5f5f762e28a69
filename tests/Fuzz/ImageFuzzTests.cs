using DiffusionPeft.Core.Imaging;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// Images (instance, class and real folders): mutated real files, PNG IHDR / JPEG SOF sizes of up to 2^32 a side,
/// zTXt / iTXt decompression bombs and eXIf junk through <see cref="ImageLoader.Load"/>, <see cref="PngText.Read"/> and a
/// DreamBooth folder scan. Run under a 4-megapixel limit so every case stays small; the limit itself is what is tested.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class ImageFuzzTests(ITestOutputHelper output) : IDisposable
{
    private static readonly ImageLimits Limits = new() { MaxPixels = 4L << 20 };
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    public static IReadOnlyList<(string Ext, byte[] Bytes)> Bases()
    {
        var files = Directory.GetFiles(Path.Combine(GoldenData.Dir, "metrics_tiny", "images"))
            .Concat(Directory.GetFiles(Path.Combine(GoldenData.RepoRoot(), "tests", "Metrics", "Data")))
            .Where(ImageLoader.IsImageFile).Order(StringComparer.Ordinal);
        var bases = files.Select(f => (Path.GetExtension(f).ToLowerInvariant(), File.ReadAllBytes(f))).ToList();
        var small = new RgbImage(24, 16, Enumerable.Range(0, 24 * 16 * 3).Select(i => (byte)(i * 7)).ToArray());
        bases.Add((".png", PngWriter.Encode(small, [("parameters", "a sks dog\nSteps: 20, Seed: 1"), ("prompt", "ein Hund ☃")])));
        bases.Add((".jpg", JpegEncoder.Encode(small)));
        return bases;
    }

    [Fact]
    public void HostileImagesAreRefusedWithImageDecodeExceptionAndNeverStopAScan()
    {
        var saved = ImageLimits.Default;
        ImageLimits.Default = Limits;
        try
        {
            var bases = Bases();
            var good = bases.First(b => b.Ext == ".png").Bytes;
            var r = FuzzSettings.Random("images");
            var harness = new FuzzHarness("images", output);
            long decodeAllowance = 12 * Limits.MaxPixels;
            for (int i = 0, n = FuzzSettings.Cases(300); i < n; i++)
            {
                var (ext, bytes, what) = Make(r, bases);
                var path = _tmp.File($"case{i:D5}{ext}");
                File.WriteAllBytes(path, bytes);
                harness.Run($"case {i}: {what} (ImageLoader.Load)", path, bytes.Length, typeof(ImageDecodeException),
                    () => ImageLoader.Load(path), extraMemory: decodeAllowance);
                if (PngChunks.IsPng(bytes))
                    harness.Run($"case {i}: {what} (PngText.Read)", path, bytes.Length, typeof(ImageDecodeException),
                        () => PngText.Read(path), extraMemory: Limits.MaxTextBytes * 4);
                if (i % 10 == 0)
                {
                    // A DreamBooth instance folder with one good image and this one: the scan keeps the good one and skips the other.
                    var folder = Directory.CreateDirectory(_tmp.File($"folder{i:D5}")).FullName;
                    File.WriteAllBytes(Path.Combine(folder, "good.png"), good);
                    File.Copy(path, Path.Combine(folder, "hostile" + ext));
                    harness.Run($"case {i}: {what} (InstanceDataset.Scan)", folder, bytes.Length, typeof(NoTrainingImagesException), () =>
                    {
                        var scan = InstanceDataset.Scan(folder, "a sks dog", ImageLoaderDecoder.Instance);
                        Assert.Contains(scan.Images, im => im.Path.EndsWith("good.png", StringComparison.Ordinal));
                    }, extraMemory: decodeAllowance);
                    Directory.Delete(folder, recursive: true);
                }
                File.Delete(path);
            }
            harness.AssertClean();
        }
        finally { ImageLimits.Default = saved; }
    }

    private static readonly uint[] PngSides = [0, 1, 2047, 2048, 4096, 30_000, 65_535, 65_536, 100_000, 1_000_000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF];
    private static readonly ushort[] JpegSides = [0, 1, 2048, 4096, 8192, 30_000, 40_000, 65_000, 65_535];

    private static (string Ext, byte[] Bytes, string What) Make(Random r, IReadOnlyList<(string Ext, byte[] Bytes)> bases)
    {
        var (ext, src) = bases[r.Next(bases.Count)];
        var pngs = bases.Where(b => b.Ext == ".png").ToList();
        var jpegs = bases.Where(b => b.Ext is ".jpg" or ".jpeg").ToList();
        switch (r.Next(10))
        {
            case 0 or 1 or 2 or 3:
            {
                var (bytes, what) = ByteMutator.Mutate(src, r);
                return (ext, bytes, $"{ext} {what}");
            }
            case 4:
            {
                var png = pngs[r.Next(pngs.Count)].Bytes;
                uint w = r.Next(3) == 0 ? (uint)r.Next(1, 50_000) : PngSides[r.Next(PngSides.Length)], h = PngSides[r.Next(PngSides.Length)];
                var bytes = ImageForge.PngWithSize(png, w, h);
                if (r.Next(3) == 0) bytes = ByteMutator.Mutate(bytes, r).Bytes;
                return (".png", bytes, $"PNG IHDR {w}x{h}");
            }
            case 5:
            {
                var jpeg = jpegs[r.Next(jpegs.Count)].Bytes;
                ushort w = JpegSides[r.Next(JpegSides.Length)], h = r.Next(3) == 0 ? (ushort)r.Next(1, 65_536) : JpegSides[r.Next(JpegSides.Length)];
                return (".jpg", ImageForge.JpegWithSize(jpeg, w, h) ?? jpeg, $"JPEG SOF {w}x{h}");
            }
            case 6:
            {
                bool itxt = r.Next(2) == 0;
                int size = new[] { 2 << 20, 64 << 20 }[r.Next(2)];
                var png = pngs[r.Next(pngs.Count)].Bytes;
                return (".png", ImageForge.PngWithChunk(png, itxt ? "iTXt" : "zTXt", ImageForge.TextBomb(itxt, size)), $"{(itxt ? "iTXt" : "zTXt")} bomb of {size >> 20} MiB");
            }
            case 7:
            {
                var png = pngs[r.Next(pngs.Count)].Bytes;
                int count = 1 + r.Next(24);
                for (int k = 0; k < count; k++) png = ImageForge.PngWithChunk(png, "zTXt", ImageForge.TextBomb(false, 900 << 10, $"k{k}"));
                return (".png", png, $"{count} zTXt chunks of 900 KiB each");
            }
            case 8:
            {
                var junk = new byte[r.Next(0, 64)];
                r.NextBytes(junk);
                byte[] exif = r.Next(2) == 0 ? [(byte)'M', (byte)'M', 0, 42, 0xFF, 0xFF, 0xFF, 0xF0, .. junk] : [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0, 0xFF, 0xFF, .. junk];
                var png = pngs[r.Next(pngs.Count)].Bytes;
                // eXIf must precede IDAT for the orientation reader: insert it right after IHDR.
                var withChunk = ImageForge.PngWithChunk(png[..33].Concat(new byte[] { 0, 0, 0, 0, 73, 69, 78, 68, 0xAE, 0x42, 0x60, 0x82 }).ToArray(), "eXIf", exif);
                return (".png", [.. withChunk[..^12], .. png[33..]], "eXIf junk before the image data");
            }
            default:
            {
                var (bytes, what) = ByteMutator.Mutate(src, r);
                (bytes, var second) = ByteMutator.Mutate(bytes, r);
                return (ext, bytes, $"{ext} {what}, then {second}");
            }
        }
    }
}
