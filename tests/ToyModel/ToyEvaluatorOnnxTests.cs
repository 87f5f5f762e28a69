using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.Text;
using DiffusionPeft.Metrics;
using DiffusionPeft.Tests.IO;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyModel.Dino;
using DiffusionPeft.ToyModel.Onnx;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Vocabulary;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.ToyModel;

/// <summary>
/// Every toy evaluator export, on randomly initialised models, gives in ONNX Runtime (through the metrics' own
/// embedders, so names, shapes and preprocessing are checked too) what the TorchSharp modules give on the same inputs.
/// </summary>
public sealed class ToyEvaluatorOnnxTests : IDisposable
{
    private const float Tolerance = 1e-4f;
    private readonly TempDir _dir = new();
    private static readonly World World = new(0);

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(OnnxWeightStorage.Float32)]
    [InlineData(OnnxWeightStorage.Float16)]
    public void ClipVisionExportEqualsTheImageTower(OnnxWeightStorage storage)
    {
        manual_seed(11);
        using var tower = new ToyImageEncoder(48);
        RoundWeights(tower, storage);
        var path = _dir.File("clip-vision.onnx");
        ToyClipVisionOnnx.Build(tower, ClipPreprocessor.Spec, storage).Save(path);

        using var embedder = new ClipImageEmbedder(path);
        var (pixels, batch) = Inputs(embedder.Preprocessor);
        var onnx = embedder.Embed(pixels, batch);

        using var _ = no_grad();
        var unit = Unnormalised(pixels, batch, 224, ClipPreprocessor.Spec);
        var expected = tower.Embed(nn.functional.avg_pool2d(unit, 7));
        AssertClose(expected, onnx);
    }

    [Theory]
    [InlineData(OnnxWeightStorage.Float32)]
    [InlineData(OnnxWeightStorage.Float16)]
    public void DinoExportEqualsTheEncoder(OnnxWeightStorage storage)
    {
        manual_seed(13);
        using var encoder = new ToyDinoEncoder(embedDim: 40, width: 8);
        RoundWeights(encoder, storage);
        var path = _dir.File("dino.onnx");
        ToyDinoOnnx.Build(encoder, DinoPreprocessor.Spec, storage).Save(path);

        using var embedder = new DinoEmbedder(path);
        var (pixels, batch) = Inputs(embedder.Preprocessor);
        var (hidden, shape) = embedder.LastHiddenState(pixels, batch);
        Assert.Equal([batch, 1, 40], shape);
        var onnx = embedder.Embed(pixels, batch);
        Assert.Equal(hidden[40..80], onnx[1]);   // the metric reads row 0 of the single token

        using var _ = no_grad();
        var unit = Unnormalised(pixels, batch, 224, DinoPreprocessor.Spec);
        AssertClose(encoder.call(nn.functional.avg_pool2d(unit, 4)), onnx);
    }

    [Theory]
    [InlineData(OnnxWeightStorage.Float32, false)]
    [InlineData(OnnxWeightStorage.Float16, false)]
    [InlineData(OnnxWeightStorage.Float32, true)]
    public void ClipTextExportEqualsTheTextEncoderAndProjection(OnnxWeightStorage storage, bool legacyEos)
    {
        var tokenizer = ToyVocabulary.CreateTokenizer();
        manual_seed(12);
        var config = ToyModelConfigs.TextEncoder(tokenizer, width: 64, layers: 2) with { HiddenAct = legacyEos ? "gelu" : "quick_gelu" };
        if (legacyEos) config = config with { EosTokenId = 2 };
        using var clip = new ToyClip(config, 48);
        RoundWeights(clip, storage);
        var path = _dir.File("clip-text.onnx");
        ToyClipTextOnnx.Build(clip.text_model, clip.text_projection, storage).Save(path);

        using var embedder = new ClipTextEmbedder(path, t => tokenizer.EncodeForModel(t).InputIds);
        Assert.Equal(ToyVocabulary.ContextLength, embedder.SequenceLength);
        var captions = new[] { "a red circle", World.FullCaption(World.HeldOutStart + 3).ToText(), "a large sks star on the left, plain pink background", "" };
        var ids = captions.Select(c => tokenizer.EncodeForModel(c).InputIds).ToList();
        var random = new Random(5);
        for (int r = 0; r < 3; r++)   // rows of random ids: no EOS at all, or EOS in the middle
            ids.Add(Enumerable.Range(0, 32).Select(i => r == 1 && i == 17 ? (long)tokenizer.EosId : random.Next(tokenizer.VocabSize)).ToArray());
        var onnx = embedder.Embed(ids);

        using var _ = no_grad();
        var idTensor = tensor(ids.SelectMany(r => r).ToArray(), [ids.Count, 32]);
        var expected = clip.text_projection.call(clip.text_model.Forward(idTensor).PooledOutput);
        AssertClose(expected, onnx);
        Assert.Equal(onnx[0], embedder.Embed(["a red circle"])[0]);   // the tokenizer delegate path
    }

    /// <summary>Four preprocessed scenes (two training, two held-out) and two images of unit noise: [6, 3, S, S].</summary>
    private static (float[] Pixels, int Batch) Inputs(ImagePreprocessor preprocessor)
    {
        var images = new[] { 0L, 1L, World.HeldOutStart, World.HeldOutStart + 1 }.Select(World.Render).ToList();
        var scenes = preprocessor.ProcessBatch(images);
        var noise = new Random(3);
        var extra = Enumerable.Range(0, 2 * preprocessor.ValuesPerImage).Select(_ => (float)(noise.NextDouble() * 4 - 2)).ToArray();
        return (scenes.Concat(extra).ToArray(), images.Count + 2);
    }

    /// <summary>The [-1, 1] pixels the preprocessing's normalisation stands for: 2·(x·std + mean) − 1.</summary>
    private static Tensor Unnormalised(float[] pixels, int batch, int size, PreprocessSpec spec)
    {
        var x = tensor(pixels, [batch, 3, size, size]);
        var std = tensor(spec.Std, [1, 3, 1, 1]);
        var mean = tensor(spec.Mean, [1, 3, 1, 1]);
        return (x * std + mean) * 2 - 1;
    }

    /// <summary>float16 storage is exact for a model whose weights are already float16 values.</summary>
    private static void RoundWeights(nn.Module module, OnnxWeightStorage storage)
    {
        if (storage != OnnxWeightStorage.Float16) return;
        using var _ = no_grad();
        foreach (var p in module.parameters()) p.copy_(p.to_type(ScalarType.Float16).to_type(ScalarType.Float32));
    }

    private static void AssertClose(Tensor expected, float[][] actual)
    {
        var e = expected.cpu().contiguous();
        Assert.Equal(e.shape[0], actual.Length);
        Assert.Equal(e.shape[1], actual[0].Length);
        var values = e.data<float>().ToArray();
        float worst = 0, scale = 0;
        for (int b = 0; b < actual.Length; b++)
            for (int j = 0; j < actual[b].Length; j++)
            {
                worst = Math.Max(worst, Math.Abs(values[b * actual[b].Length + j] - actual[b][j]));
                scale = Math.Max(scale, Math.Abs(values[b * actual[b].Length + j]));
            }
        Assert.True(scale > 1e-3, $"outputs are all near zero (max |x| = {scale}): the comparison would say nothing");
        Assert.True(worst <= Tolerance, $"ONNX differs from TorchSharp by up to {worst:G3} (outputs up to {scale:G3}; tolerance {Tolerance})");
    }
}
