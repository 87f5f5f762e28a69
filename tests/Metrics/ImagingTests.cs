using System.Text.Json.Nodes;
using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.Tests.Metrics;

public sealed class ImagingTests
{
    private static MetricsCase AnyCase() => MetricsCase.First();

    private static RgbImage Random(int w, int h, int seed)
    {
        var px = new byte[w * h * 3];
        new Random(seed).NextBytes(px);
        return new RgbImage(w, h, px);
    }

    // Independent definitions of the EXIF orientations in terms of mirror (M), flip (F) and transpose (T).
    private static RgbImage Map(RgbImage s, Func<int, int, (int, int)> srcOf, bool swap)
    {
        int ow = swap ? s.Height : s.Width, oh = swap ? s.Width : s.Height;
        var px = new byte[s.Pixels.Length];
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
            {
                var (sx, sy) = srcOf(x, y);
                s.Pixels.AsSpan((sy * s.Width + sx) * 3, 3).CopyTo(px.AsSpan((y * ow + x) * 3));
            }
        return new RgbImage(ow, oh, px);
    }
    private static RgbImage M(RgbImage s) => Map(s, (x, y) => (s.Width - 1 - x, y), false);
    private static RgbImage F(RgbImage s) => Map(s, (x, y) => (x, s.Height - 1 - y), false);
    private static RgbImage T(RgbImage s) => Map(s, (x, y) => (y, x), true);

    [Fact]
    public void AppliesAllEightExifOrientations()
    {
        using var c = AnyCase();
        var img = c.Images.First(i => i["pil_open"]?["exif_orientation"] is JsonValue);
        var bytes = File.ReadAllBytes(c.PathOf((string)img["file"]!));
        int at = FindOrientationValue(bytes, (int)img["pil_open"]!["exif_orientation"]!);
        Assert.True(at > 0, "orientation tag not found in the EXIF block");
        RgbImage WithOrientation(int o) { var b = (byte[])bytes.Clone(); b[at] = (byte)o; return ImageLoader.Decode(b, $"orientation {o}"); }

        var stored = WithOrientation(1);
        var expected = new Dictionary<int, RgbImage>
        {
            [1] = stored, [2] = M(stored), [3] = M(F(stored)), [4] = F(stored),
            [5] = T(stored), [6] = M(T(stored)), [7] = M(F(T(stored))), [8] = F(T(stored)),
        };
        foreach (var (o, e) in expected)
        {
            var got = WithOrientation(o);
            Assert.Equal((e.Width, e.Height), (got.Width, got.Height));
            Assert.True(e.Pixels.AsSpan().SequenceEqual(got.Pixels), $"orientation {o}: pixels differ");
        }
    }

    /// <summary>Byte offset of the low byte of the orientation SHORT (tag 0x0112) in either TIFF byte order.</summary>
    private static int FindOrientationValue(byte[] b, int value)
    {
        for (int i = 0; i + 10 < b.Length; i++)
        {
            if (b[i] == 0x12 && b[i + 1] == 0x01 && b[i + 2] == 3 && b[i + 3] == 0 && b[i + 8] == value && b[i + 9] == 0) return i + 8; // II
            if (b[i] == 0x01 && b[i + 1] == 0x12 && b[i + 2] == 0 && b[i + 3] == 3 && b[i + 8] == 0 && b[i + 9] == value) return i + 9; // MM
        }
        return -1;
    }

    [Fact]
    public void BadFilesRaiseErrorsNamingTheFileAndFault()
    {
        using var c = AnyCase();
        var dir = Directory.CreateTempSubdirectory("dpeft-img-").FullName;
        try
        {
            foreach (var img in c.Images.Take(3))
            {
                var src = c.PathOf((string)img["file"]!);
                var bytes = File.ReadAllBytes(src);
                var cut = Path.Combine(dir, "cut_" + Path.GetFileName(src));
                File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
                var e = Assert.Throws<ImageDecodeException>(() => ImageLoader.Load(cut));
                Assert.Equal(cut, e.FilePath);
                Assert.Contains("truncated", e.Message);
            }
            var garbage = Path.Combine(dir, "garbage.png");
            File.WriteAllText(garbage, "this is not an image at all, just some text that is long enough");
            Assert.Contains("not an image", Assert.Throws<ImageDecodeException>(() => ImageLoader.Load(garbage)).Message);
            var empty = Path.Combine(dir, "empty.jpg");
            File.WriteAllBytes(empty, []);
            Assert.Contains("empty", Assert.Throws<ImageDecodeException>(() => ImageLoader.Load(empty)).Message);
            Assert.Contains("missing.png", Assert.Throws<ImageDecodeException>(() => ImageLoader.Load(Path.Combine(dir, "missing.png"))).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void PngWriterRoundTripsPixelsAndTextChunksAtomically()
    {
        var dir = Directory.CreateTempSubdirectory("dpeft-png-").FullName;
        try
        {
            var img = Random(37, 23, 1);
            var path = Path.Combine(dir, "out.png");
            var text = new List<(string, string)>
            {
                ("parameters", "a sks dog in the snow\nNegative prompt: blurry\nSteps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 42"),
                ("prompt", "ein Hund im Schnee, ☃ 雪"),
            };
            PngWriter.Write(path, img, text);
            Assert.Single(Directory.GetFiles(dir));
            var back = ImageLoader.Load(path);
            Assert.Equal((37, 23), (back.Width, back.Height));
            Assert.True(img.Pixels.AsSpan().SequenceEqual(back.Pixels));
            Assert.Equal(text, PngText.Read(path));
            Assert.Equal(text[1].Item2, PngText.Get(PngText.Read(path), "prompt"));

            var bytes = File.ReadAllBytes(path);
            bytes[40] ^= 0xFF; // inside a text chunk: its CRC no longer matches
            File.WriteAllBytes(path, bytes);
            Assert.Contains("CRC", Assert.Throws<ImageDecodeException>(() => PngText.Read(path)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData(97, 61, 40, 30)]   // down
    [InlineData(20, 31, 53, 47)]   // up
    [InlineData(64, 48, 64, 20)]   // vertical only
    [InlineData(64, 48, 30, 48)]   // horizontal only
    public void RegionOfResizeEqualsResizeThenCrop(int w, int h, int ow, int oh)
    {
        var img = Random(w, h, w * h);
        var full = PilResize.Resize(img, ow, oh);
        int cw = Math.Max(1, ow / 2), ch = Math.Max(1, oh / 3), left = ow - cw - ow / 5, top = oh / 4;
        var region = PilResize.ResizeRegion(img, ow, oh, left, top, cw, ch);
        Assert.True(full.Crop(left, top, cw, ch).Pixels.AsSpan().SequenceEqual(region.Pixels));
    }

    [Fact]
    public void ResizeKeepsConstantImagesAndTheSameSize()
    {
        var flat = RgbImage.Blank(50, 30, 200, 17, 99);
        var up = PilResize.Resize(flat, 83, 41);
        var down = PilResize.Resize(flat, 11, 7);
        Assert.All(new[] { up, down }, r => Assert.True(r.Pixels.AsSpan().SequenceEqual(RgbImage.Blank(r.Width, r.Height, 200, 17, 99).Pixels)));
        var img = Random(20, 10, 5);
        Assert.True(PilResize.Resize(img, 20, 10).Pixels.AsSpan().SequenceEqual(img.Pixels));
    }

    [Fact]
    public void GridPlacesImagesRowMajorAndThumbnailsKeepAspect()
    {
        var a = RgbImage.Blank(4, 4, 255, 0, 0);
        var b = RgbImage.Blank(4, 2, 0, 255, 0);
        var d = RgbImage.Blank(2, 4, 0, 0, 255);
        var g = ImageGrid.Compose([a, b, d], columns: 2, gap: 1, background: 0);
        Assert.Equal((2 * 4 + 3, 2 * 4 + 3), (g.Width, g.Height));
        byte[] At(int x, int y) => g.Pixels.AsSpan((y * g.Width + x) * 3, 3).ToArray();
        Assert.Equal(new byte[] { 255, 0, 0 }, At(1, 1));
        Assert.Equal(new byte[] { 0, 255, 0 }, At(6, 2));   // b is centred vertically in its 4-high cell
        Assert.Equal(new byte[] { 0, 0, 0 }, At(6, 1));
        Assert.Equal(new byte[] { 0, 0, 255 }, At(2, 6));   // d is centred horizontally
        var t = ImageGrid.Thumbnail(Random(300, 200, 3), 96);
        Assert.Equal((96, 64), (t.Width, t.Height));
        Assert.Equal((64, 64), (ImageGrid.SquareThumbnail(Random(300, 200, 3), 64).Width, 64));
        var jpeg = JpegEncoder.Encode(t, 80);
        var back = ImageLoader.Decode(jpeg, "thumb.jpg");
        Assert.Equal((96, 64), (back.Width, back.Height));
    }
}
