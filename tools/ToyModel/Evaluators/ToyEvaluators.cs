using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Core.Text;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Metrics;
using DiffusionPeft.ToyModel.Dino;
using DiffusionPeft.ToyModel.Onnx;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Vocabulary;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel.Evaluators;

/// <summary>What an export wrote, and how closely the ONNX files, fed by the metrics' preprocessing, follow the TorchSharp models on their own inputs.</summary>
public sealed record ToyEvaluatorExport(string Folder, OnnxWeightStorage Storage, long DinoBytes, long ClipVisionBytes, long ClipTextBytes,
                                       double DinoCosine, double ClipVisionCosine, double ClipTextCosine, int Samples)
{
    public long TotalBytes => DinoBytes + ClipVisionBytes + ClipTextBytes;
}

/// <summary>
/// Exports the toy world's evaluators: the toy DINO (<see cref="ToyDino"/>) as <c>dino.onnx</c>, the toy CLIP's image
/// tower as <c>clip-vision.onnx</c> and its text side as <c>clip-text.onnx</c>, with the toy tokenizer in
/// <c>tokenizer/</c> and a manifest, <c>evaluators.json</c> (<see cref="ToyEvaluatorFiles.ManifestFile"/>): the folder layout of <see cref="ToyEvaluatorFiles"/>, which
/// `dpeft eval` uses by default.
/// </summary>
public static class ToyEvaluators
{
    public const string ClipWeightsFile = "toy_clip.safetensors";

    /// <param name="toyClipFolder">The CLIP stage's model folder (config.json of the text encoder + toy_clip.safetensors), or the stage folder holding it in model/.</param>
    /// <param name="dinoFolder">The DINO stage's model folder, or the stage folder.</param>
    /// <param name="worldSeed">The world whose held-out scenes the export's fidelity check uses.</param>
    public static ToyEvaluatorExport Export(string toyClipFolder, string dinoFolder, string outFolder,
                                            OnnxWeightStorage storage = OnnxWeightStorage.Float16, long worldSeed = 0, int samples = 64)
    {
        var clipFolder = ModelFolder(toyClipFolder, ClipWeightsFile);
        var dinoModel = ModelFolder(dinoFolder, ToyDino.WeightsFile);
        using var clip = LoadClip(clipFolder);
        using var dino = ToyDino.Load(dinoModel);
        Directory.CreateDirectory(outFolder);
        var tokenizerFolder = ToyEvaluatorFiles.Tokenizer(outFolder);
        ToyVocabulary.Write(tokenizerFolder);
        var tokenizer = ToyVocabulary.Load(tokenizerFolder);
        CheckTokenizer(tokenizer, clip.text_model.Config, clipFolder);

        var paths = ToyEvaluatorFiles.Paths(outFolder);
        ToyDinoOnnx.Build(dino.encoder, DinoPreprocessor.Spec, storage).Save(paths.Dino);
        ToyClipVisionOnnx.Build(clip.vision_model, ClipPreprocessor.Spec, storage).Save(paths.ClipVision);
        ToyClipTextOnnx.Build(clip.text_model, clip.text_projection, storage).Save(paths.ClipText);

        var world = new World(worldSeed);
        var (dinoCos, visionCos, textCos) = Fidelity(paths, tokenizer, clip, dino.encoder, world, samples);
        var export = new ToyEvaluatorExport(Path.GetFullPath(outFolder), storage, new FileInfo(paths.Dino).Length, new FileInfo(paths.ClipVision).Length,
            new FileInfo(paths.ClipText).Length, dinoCos, visionCos, textCos, samples);
        var manifest = new JsonObject
        {
            ["evaluators"] = ToyEvaluatorFiles.Description,
            ["about"] = "The toy world's own DINO (self-supervised on toy scenes) and CLIP (contrastive on toy captions), exported by dpeft. " +
                        "They score toy-world DreamBooth runs; their numbers are not comparable with real DINO ViT-S/16 or CLIP ViT-B/32 ones.",
            ["weights"] = storage == OnnxWeightStorage.Float16 ? "float16 (computed in float32)" : "float32",
            ["dino"] = new JsonObject { ["file"] = ToyEvaluatorFiles.DinoFile, ["source"] = Path.Combine(dinoModel, ToyDino.WeightsFile), ["sha256"] = FileHash.Sha256(paths.Dino) },
            ["clip_vision"] = new JsonObject { ["file"] = ToyEvaluatorFiles.ClipVisionFile, ["source"] = Path.Combine(clipFolder, ClipWeightsFile), ["sha256"] = FileHash.Sha256(paths.ClipVision) },
            ["clip_text"] = new JsonObject { ["file"] = ToyEvaluatorFiles.ClipTextFile, ["source"] = Path.Combine(clipFolder, ClipWeightsFile), ["sha256"] = FileHash.Sha256(paths.ClipText) },
            ["fidelity_to_torch"] = new JsonObject
            {
                ["about"] = "mean cosine between the ONNX embedding of the metric-preprocessed 224 px image and the TorchSharp model's on the 64 px scene " +
                            "(CLIP: whole scene, DINO: its centre 56 px), and between ONNX and TorchSharp text embeddings, over held-out scenes of the world",
                ["world_seed"] = worldSeed, ["samples"] = samples,
                ["dino"] = Math.Round(dinoCos, 6), ["clip_vision"] = Math.Round(visionCos, 6), ["clip_text"] = Math.Round(textCos, 6),
            },
        };
        AtomicFile.WriteAllText(Path.Combine(outFolder, ToyEvaluatorFiles.ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return export;
    }

    /// <summary>A toy CLIP from its model folder (config.json of the text encoder, toy_clip.safetensors); widths read from the weights.</summary>
    public static ToyClip LoadClip(string folder)
    {
        folder = ModelFolder(folder, ClipWeightsFile);
        var config = ClipTextConfig.Load(Path.Combine(folder, "config.json"));
        using var weights = SafetensorsFile.Open(Path.Combine(folder, ClipWeightsFile));
        if (!weights.Entries.TryGetValue("text_projection.weight", out var projection))
            throw new InvalidDataException($"{weights.Path}: no text_projection.weight; not a toy CLIP");
        var clip = new ToyClip(config, (int)projection.Shape[0]);
        StateDictLoader.Load(clip, weights);
        clip.eval();
        return clip;
    }

    /// <summary><paramref name="folder"/> if it holds <paramref name="weightsFile"/>, else its model/ subfolder if that does.</summary>
    private static string ModelFolder(string folder, string weightsFile)
    {
        if (File.Exists(Path.Combine(folder, weightsFile))) return Path.GetFullPath(folder);
        var model = Path.Combine(folder, ToyDino.ModelFolder);
        if (File.Exists(Path.Combine(model, weightsFile))) return Path.GetFullPath(model);
        throw new FileNotFoundException($"{folder}: neither it nor its model/ folder holds {weightsFile}");
    }

    private static void CheckTokenizer(ClipTokenizer tokenizer, ClipTextConfig config, string source)
    {
        if (tokenizer.VocabSize != config.VocabSize || tokenizer.EosId != config.EosTokenId || tokenizer.BosId != config.BosTokenId
            || tokenizer.MaxLength != config.MaxPositionEmbeddings)
            throw new InvalidDataException($"{source}: the text encoder (vocab {config.VocabSize}, bos {config.BosTokenId}, eos {config.EosTokenId}, context " +
                                           $"{config.MaxPositionEmbeddings}) was not trained with the toy tokenizer (vocab {tokenizer.VocabSize}, bos {tokenizer.BosId}, " +
                                           $"eos {tokenizer.EosId}, context {tokenizer.MaxLength})");
    }

    private static (double Dino, double Vision, double Text) Fidelity(MetricModelPaths paths, ClipTokenizer tokenizer, ToyClip clip, ToyDinoEncoder dino, World world, int samples)
    {
        var images = Enumerable.Range(0, samples).Select(i => world.Render(World.HeldOutStart + i)).ToList();
        var captions = Enumerable.Range(0, samples).Select(i => world.FullCaption(World.HeldOutStart + i).ToText()).ToList();
        float[][] onnxDino, onnxVision, onnxText;
        using (var e = new DinoEmbedder(paths.Dino)) onnxDino = e.Embed(e.Preprocessor.ProcessBatch(images), samples);
        using (var e = new ClipImageEmbedder(paths.ClipVision)) onnxVision = e.Embed(e.Preprocessor.ProcessBatch(images), samples);
        using (var e = new ClipTextEmbedder(paths.ClipText, t => tokenizer.EncodeForModel(t).InputIds)) onnxText = e.Embed(captions);

        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var pixels = ScenePixels.Unit(images);
        int margin = (64 - ToyDinoEncoder.InputSize) / 2;
        var torchDino = dino.call(pixels.narrow(2, margin, ToyDinoEncoder.InputSize).narrow(3, margin, ToyDinoEncoder.InputSize));
        var torchVision = clip.vision_model.call(pixels);
        var ids = tensor(captions.SelectMany(c => tokenizer.EncodeForModel(c).InputIds).ToArray(), [samples, tokenizer.MaxLength]);
        var torchText = clip.text_projection.call(clip.text_model.Forward(ids).PooledOutput);
        return (MeanCosine(onnxDino, torchDino), MeanCosine(onnxVision, torchVision), MeanCosine(onnxText, torchText));
    }

    private static double MeanCosine(float[][] a, Tensor b)
    {
        var rows = b.cpu().contiguous();
        long dim = rows.shape[1];
        var values = rows.data<float>().ToArray();
        return a.Select((row, i) => Similarity.Cosine(row, values.AsSpan((int)(i * dim), (int)dim))).Average();
    }
}
