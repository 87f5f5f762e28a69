using System.Security.Cryptography;
using System.Text.Json.Nodes;
using DiffusionPeft.Imaging;
using DiffusionPeft.Tests.Golden;

namespace DiffusionPeft.Tests.Metrics;

/// <summary>metrics cases: decoding, Pillow-exact preprocessing, ONNX embeddings and DreamBooth scores, driven by case.json.</summary>
[Trait("Category", "Golden")]
public sealed class MetricsGoldenTests
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("metrics");

    [Theory, MemberData(nameof(Cases))]
    public void DecodesEveryImageLikePil(string caseName)
    {
        using var c = new MetricsCase(caseName);
        foreach (var img in c.Images)
        {
            string name = (string)img["name"]!;
            var decoded = ImageLoader.Load(c.PathOf((string)img["file"]!));
            var exp = (JsonObject)img["decoded_rgb"]!;
            Assert.Equal(((int)exp["width"]!, (int)exp["height"]!), (decoded.Width, decoded.Height));
            Assert.True(Convert.ToHexStringLower(SHA256.HashData(decoded.Pixels)) == (string)exp["sha256_of_rgb_bytes"]!,
                $"{name}: decoded RGB bytes differ from Pillow's (means {string.Join(", ", ChannelMeans(decoded).Select(m => m.ToString("F3")))} vs {exp["channel_mean"]!.ToJsonString()})");
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void PreprocessingMatchesTorchvisionAndPillowExactly(string caseName)
    {
        using var c = new MetricsCase(caseName);
        var (atol, rtol) = c.Tolerance("pixel_values");
        foreach (var (pipe, pre) in Preprocessors(c))
            foreach (var img in c.Images)
            {
                string name = (string)img["name"]!;
                var decoded = ImageLoader.Load(c.PathOf((string)img["file"]!));
                var geo = pre.GeometryOf(decoded.Width, decoded.Height);
                var eg = (JsonObject)img[pipe]!;
                Assert.Equal(((int)eg["resized_width"]!, (int)eg["resized_height"]!, (int)eg["crop_left"]!, (int)eg["crop_top"]!),
                    (geo.ResizedWidth, geo.ResizedHeight, geo.CropLeft, geo.CropTop));
                Assert.Equal((bool)eg["resize_skipped"]!, geo.ResizeSkipped(decoded.Width, decoded.Height));

                var crop = pre.CropU8(decoded);
                ArrayAssert.Equal(crop.ToChw(), c.U8($"{pipe}.pixel_u8.{name}"), $"{pipe}.pixel_u8.{name}");

                var values = pre.Process(decoded);
                string stored = $"{pipe}.pixel_values.{name}";
                if (c.Has(stored)) ArrayAssert.Close(values, c.F32(stored), atol, rtol, stored);
                // Where the float tensor is not stored, the case defines it as (pixel_u8 / 255f - mean) / std.
                var fromU8 = FromChwU8(c.U8($"{pipe}.pixel_u8.{name}"), pre.Spec);
                ArrayAssert.Close(values, fromU8, 0, 0, $"{stored} (from pixel_u8)");
            }
    }

    internal static IEnumerable<(string Pipe, ImagePreprocessor Pre)> Preprocessors(MetricsCase c)
    {
        foreach (var pipe in new[] { "dino", "clip" })
        {
            var p = (JsonObject)c.Json["preprocessing"]![pipe]!;
            // The crop size is the models' input size; resize/mean/std come from case.json.
            int crop = (int)c.Json["models"]![pipe == "dino" ? "dino" : "clip_vision"]!["inputs"]![0]!["shape"]![2]!;
            yield return (pipe, new ImagePreprocessor(new PreprocessSpec(pipe, (int)p["resize"]!, crop,
                MetricsCase.Floats(p["mean"]), MetricsCase.Floats(p["std"]))));
        }
    }

    private static float[] FromChwU8(byte[] chw, PreprocessSpec spec)
    {
        var r = new float[chw.Length];
        int n = chw.Length / 3;
        for (int i = 0; i < chw.Length; i++) r[i] = (chw[i] / 255f - spec.Mean[i / n]) / spec.Std[i / n];
        return r;
    }

    private static double[] ChannelMeans(RgbImage im)
    {
        var s = new double[3];
        for (int i = 0; i < im.Pixels.Length; i++) s[i % 3] += im.Pixels[i];
        return s.Select(v => v / (im.Width * im.Height)).ToArray();
    }
}
