using System.Security.Cryptography;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Metrics;
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

    [Theory, MemberData(nameof(Cases))]
    public void OnnxEmbeddingsSimilaritiesAndScoresMatch(string caseName)
    {
        using var c = new MetricsCase(caseName);
        var pre = Preprocessors(c).ToDictionary(p => p.Pipe, p => p.Pre);
        var order = c.Json["metrics"]!["image_order"]!.AsArray().Select(n => (string)n!).ToArray();
        var files = c.Images.ToDictionary(i => (string)i["name"]!, i => c.PathOf((string)i["file"]!));
        var decoded = order.Select(n => ImageLoader.Load(files[n])).ToArray();
        var (eAtol, eRtol) = c.Tolerance("embeddings");
        var (hAtol, hRtol) = c.Tolerance("dino_last_hidden_state");
        var (sAtol, sRtol) = c.Tolerance("similarities");

        using var dino = new DinoEmbedder(c.ModelPath("dino"), pre["dino"]);
        using var clipImage = new ClipImageEmbedder(c.ModelPath("clip_vision"), pre["clip"]);
        using var clipText = new ClipTextEmbedder(c.ModelPath("clip_text"));

        var dinoPx = pre["dino"].ProcessBatch(decoded);
        var dinoEmb = dino.Embed(dinoPx, decoded.Length);
        var (hidden, hShape) = dino.LastHiddenState(dinoPx, decoded.Length);
        int perImage = (int)(hShape[1] * hShape[2]);
        var clipEmb = clipImage.Embed(pre["clip"].ProcessBatch(decoded), decoded.Length);
        for (int i = 0; i < order.Length; i++)
        {
            string n = order[i];
            ArrayAssert.Close(hidden.AsSpan(i * perImage, perImage), c.F32($"dino.last_hidden_state.{n}"), hAtol, hRtol, $"dino.last_hidden_state.{n}");
            ArrayAssert.Close(dinoEmb[i], c.F32($"dino.embedding.{n}"), eAtol, eRtol, $"dino.embedding.{n}");
            ArrayAssert.Close(clipEmb[i], c.F32($"clip.image_embeds.{n}"), eAtol, eRtol, $"clip.image_embeds.{n}");
        }
        // One image at a time gives the batched result.
        var single = dino.Embed(pre["dino"].Process(decoded[^1]), 1)[0];
        ArrayAssert.Close(single, dinoEmb[^1], 1e-6, 0, "DINO batch of 1 vs batched");

        var textEmb = clipText.Embed(Rows(c.I64("clip.input_ids"), c.ShapeOf("clip.input_ids")));
        var expectedText = c.F32("clip.text_embeds");
        int td = expectedText.Length / textEmb.Length;
        for (int p = 0; p < textEmb.Length; p++)
            ArrayAssert.Close(textEmb[p], expectedText.AsSpan(p * td, td), eAtol, eRtol, $"clip.text_embeds[{p}]");
        if (c.Has("clip.input_ids_pad0"))
        {
            var pad0 = clipText.Embed(Rows(c.I64("clip.input_ids_pad0"), c.ShapeOf("clip.input_ids_pad0")));
            for (int p = 0; p < pad0.Length; p++)
                ArrayAssert.Close(pad0[p], expectedText.AsSpan(p * td, td), eAtol, eRtol, $"clip.text_embeds[{p}] from input_ids_pad0");
        }

        ArrayAssert.Close(Flatten(Similarity.Matrix(dinoEmb, dinoEmb)), c.F64("expected.dino_similarity"), sAtol, sRtol, "expected.dino_similarity");
        ArrayAssert.Close(Flatten(Similarity.Matrix(clipEmb, clipEmb)), c.F64("expected.clip_i_similarity"), sAtol, sRtol, "expected.clip_i_similarity");
        ArrayAssert.Close(Flatten(Similarity.Matrix(clipEmb, textEmb)), c.F64("expected.clip_t_similarity"), sAtol, sRtol, "expected.clip_t_similarity");

        // The aggregates: one subject, the listed real images, generated images with their prompts.
        var agg = c.Json["metrics"]!["aggregates"]!;
        int Index(string n) => Array.IndexOf(order, n);
        var real = agg["real_images"]!.AsArray().Select(n => Index((string)n!)).ToArray();
        var generated = agg["generated_images"]!.AsArray().Select(g => new GeneratedEmbeddings(
            (string)g!["image"]!, $"prompt {(int)g["prompt_index"]!}", $"prompt {(int)g["prompt_index"]!}", $"prompt {(int)g["prompt_index"]!}",
            dinoEmb[Index((string)g["image"]!)], clipEmb[Index((string)g["image"]!)], textEmb[(int)g["prompt_index"]!])).ToList();
        var scores = FidelityScorer.Score([new SubjectEmbeddings("subject", real.Select(i => order[i]).ToList(),
            real.Select(i => dinoEmb[i]).ToList(), real.Select(i => clipEmb[i]).ToList(), generated)]);
        var values = agg["values"]!;
        Assert.Equal((double)values["dino"]!, scores.Overall.Dino.Mean, sAtol);
        Assert.Equal((double)values["clip_i"]!, scores.Overall.ClipI.Mean, sAtol);
        Assert.Equal((double)values["clip_t"]!, scores.Overall.ClipT.Mean, sAtol);
        Assert.Equal(c.F64("expected.dino_score")[0], scores.PerSubject.Single().Dino.Mean, sAtol);
        Assert.Equal(c.F64("expected.clip_i_score")[0], scores.PerSubject.Single().ClipI.Mean, sAtol);
        Assert.Equal(c.F64("expected.clip_t_score")[0], scores.PerSubject.Single().ClipT.Mean, sAtol);
        Assert.Equal(generated.Count, scores.Overall.Dino.Count);
    }

    [Theory, MemberData(nameof(Cases))]
    public void ModelsThatDoNotFitAreRejectedWithAClearMessage(string caseName)
    {
        using var c = new MetricsCase(caseName);
        string dinoPath = c.ModelPath("dino"), textPath = c.ModelPath("clip_text");
        var e1 = Assert.Throws<InvalidDataException>(() => new ClipImageEmbedder(dinoPath));
        Assert.Contains("image_embeds", e1.Message);
        Assert.Contains(Path.GetFileName(dinoPath), e1.Message);
        var e2 = Assert.Throws<InvalidDataException>(() => new DinoEmbedder(textPath));
        Assert.Contains("pixel_values", e2.Message);
        var e3 = Assert.Throws<InvalidDataException>(() => new ClipTextEmbedder(dinoPath));
        Assert.Contains("input_ids", e3.Message);
        // A crop other than the model's input size (case.json models.dino.inputs[0].shape[2]).
        int crop = (int)c.Json["models"]!["dino"]!["inputs"]![0]!["shape"]![2]! + 32;
        var wrongSize = new ImagePreprocessor(DinoPreprocessor.Spec with { ResizeShorter = crop + 32, Crop = crop });
        var e4 = Assert.Throws<InvalidDataException>(() => new DinoEmbedder(dinoPath, wrongSize));
        Assert.Contains($"expected {crop}", e4.Message);
    }

    private static long[][] Rows(long[] flat, long[] shape)
    {
        int rows = (int)shape[0], cols = (int)shape[1];
        return Enumerable.Range(0, rows).Select(r => flat.AsSpan(r * cols, cols).ToArray()).ToArray();
    }

    private static double[] Flatten(double[,] m) => m.Cast<double>().ToArray();

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
