using System.Security.Cryptography;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Tests.Golden;

namespace DiffusionPeft.Tests.Metrics;

/// <summary>Decoding and resizing against Pillow 9.4 on small fixtures made by Data/make_fixtures.py (CMYK JPEG, WebP, LA, P, RGBA, up/down scaling).</summary>
public sealed class PillowFixtureTests
{
    private static readonly string DataDir = Path.Combine(GoldenData.RepoRoot(), "tests", "Metrics", "Data");
    private static JsonObject Expected => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(DataDir, "expected.json")))!;

    public static TheoryData<string> Files
    {
        get
        {
            var d = new TheoryData<string>();
            foreach (var (name, _) in (JsonObject)Expected["files"]!) d.Add(name);
            return d;
        }
    }

    [Theory, MemberData(nameof(Files))]
    public void DecodesLikePillowConvertRgb(string file)
    {
        var e = Expected["files"]![file]!;
        var img = ImageLoader.Load(Path.Combine(DataDir, file));
        Assert.Equal(((int)e["width"]!, (int)e["height"]!), (img.Width, img.Height));
        Assert.True(Convert.ToHexStringLower(SHA256.HashData(img.Pixels)) == (string)e["sha256_of_rgb_bytes"]!,
            $"{file} (Pillow mode {(string)e["mode"]!}): decoded RGB differs from Pillow's convert('RGB')");
    }

    [Fact]
    public void ResizeMatchesPillowBicubicUpAndDown()
    {
        foreach (var r in Expected["resize"]!.AsArray())
        {
            int w = (int)r!["width"]!, h = (int)r["height"]!, ow = (int)r["out_width"]!, oh = (int)r["out_height"]!;
            var src = new RgbImage(w, h, Lcg(w * h * 3, (int)r["lcg_seed"]!));
            var got = PilResize.Resize(src, ow, oh);
            Assert.True(Convert.ToHexStringLower(SHA256.HashData(got.Pixels)) == (string)r["sha256_of_resized"]!,
                $"resize {w}x{h} -> {ow}x{oh} differs from Pillow");
        }
    }

    /// <summary>x = (x * 1103515245 + 12345) mod 2^31, byte = (x >> 16) &amp; 255 (as in make_fixtures.py).</summary>
    private static byte[] Lcg(int n, int seed)
    {
        var b = new byte[n];
        long x = seed;
        for (int i = 0; i < n; i++) { x = (x * 1103515245 + 12345) & 0x7FFFFFFF; b[i] = (byte)((x >> 16) & 0xFF); }
        return b;
    }
}
