using System.Globalization;
using System.Text;
using System.Text.Json;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Core.Text;
using DiffusionPeft.Metrics;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.ToyModel.Evaluators;

/// <summary>The toy evaluators' sanity numbers (<see cref="ToyEvaluatorSanity"/>).</summary>
public sealed record ToyEvaluatorSanityResult(string Folder, long WorldSeed, RankStats CaptionForImage, RankStats ImageForCaption,
                                              SubjectSanity Dino, SubjectSanity ClipI, int SubjectViews, int Instances);

/// <summary>
/// Measures exported toy evaluators the way `dpeft eval` uses them: ONNX files through the metrics' embedders and
/// preprocessing, on images the models never trained on. CLIP-T: held-out scenes (combinations no training scene
/// shows) against their full captions. DINO and CLIP-I: the twelve DreamBooth subjects' held-out views (no evaluator
/// saw a subject in training).
/// </summary>
public static class ToyEvaluatorSanity
{
    public const string JsonFile = "sanity.json", MarkdownFile = "sanity.md";

    public static ToyEvaluatorSanityResult Run(string evaluatorsFolder, long worldSeed = 0, int captionScenes = 256, int subjectViews = 12, int instances = 5,
                                               int batch = 32)
    {
        if (!ToyEvaluatorFiles.Exist(evaluatorsFolder)) throw new FileNotFoundException($"{evaluatorsFolder}: no toy evaluators (dino.onnx, clip-vision.onnx, clip-text.onnx, tokenizer/)");
        var paths = ToyEvaluatorFiles.Paths(evaluatorsFolder);
        var tokenizer = ClipTokenizer.FromFolder(ToyEvaluatorFiles.Tokenizer(evaluatorsFolder));
        var world = new World(worldSeed);

        using var clipImage = new ClipImageEmbedder(paths.ClipVision);
        using var clipText = new ClipTextEmbedder(paths.ClipText, t => tokenizer.EncodeForModel(t).InputIds);
        using var dino = new DinoEmbedder(paths.Dino);

        var scenes = Enumerable.Range(0, captionScenes).Select(i => World.HeldOutStart + i).ToArray();
        var images = Embed(clipImage, scenes.Select(world.Render).ToList(), batch);
        var captions = new List<float[]>();
        foreach (var chunk in scenes.Select(i => world.FullCaption(i).ToText()).Chunk(batch)) captions.AddRange(clipText.Embed(chunk));
        var imageText = Similarity.Matrix(images, captions);
        var textImage = Similarity.Matrix(captions, images);
        var captionForImage = RankStats.Of(imageText, (q, c) => q == c);
        var imageForCaption = RankStats.Of(textImage, (q, c) => q == c);

        var subjects = ToySubjects.All;
        var views = subjects.SelectMany(s => Enumerable.Range(0, subjectViews).Select(i => world.SubjectHeldOut(s, i))).ToList();
        var viewImages = views.Select(SceneRenderer.Render).ToList();
        var plainImages = views.Select(v => SceneRenderer.Render(v with { Main = v.Main with { Subject = null } })).ToList();
        var instanceImages = subjects.SelectMany(s => Enumerable.Range(0, instances).Select(i => SceneRenderer.Render(world.SubjectInstance(s, i)))).ToList();
        SubjectSanity Subjects(string metric, IImageEmbedder e) =>
            Measure(metric, Embed(e, viewImages, batch), Embed(e, plainImages, batch), Embed(e, instanceImages, batch), subjects.Count, subjectViews, instances);

        return new ToyEvaluatorSanityResult(Path.GetFullPath(evaluatorsFolder), worldSeed, captionForImage, imageForCaption,
            Subjects("dino", dino), Subjects("clip_i", clipImage), subjectViews, instances);
    }

    private static SubjectSanity Measure(string metric, List<float[]> views, List<float[]> plain, List<float[]> instances, int subjects, int perSubject, int perInstance)
    {
        var viewView = Similarity.Matrix(views, views);
        var retrieval = RankStats.Of(viewView, (q, c) => q / perSubject == c / perSubject, (q, c) => q == c);
        var toInstances = Similarity.Matrix(views, instances);
        var plainToInstances = Similarity.Matrix(plain, instances);
        double MeanTo(double[,] m, int row, int subject) => Enumerable.Range(subject * perInstance, perInstance).Average(c => m[row, c]);
        int classified = 0, beats = 0;
        for (int q = 0; q < views.Count; q++)
        {
            int subject = q / perSubject;
            if (Enumerable.Range(0, subjects).MaxBy(s => MeanTo(toInstances, q, s)) == subject) classified++;
            if (MeanTo(toInstances, q, subject) > MeanTo(plainToInstances, q, subject)) beats++;
        }
        double same = 0, other = 0;
        int sameCount = 0, otherCount = 0;
        for (int a = 0; a < views.Count; a++)
            for (int b = a + 1; b < views.Count; b++)
                if (a / perSubject == b / perSubject) { same += viewView[a, b]; sameCount++; }
                else { other += viewView[a, b]; otherCount++; }
        return new SubjectSanity(metric, retrieval, classified / (double)views.Count, 1.0 / subjects, beats / (double)views.Count, same / sameCount, other / otherCount);
    }

    private static List<float[]> Embed(IImageEmbedder embedder, IReadOnlyList<RgbImage> images, int batch)
    {
        var result = new List<float[]>(images.Count);
        foreach (var chunk in images.Chunk(batch)) result.AddRange(embedder.Embed(embedder.Preprocessor.ProcessBatch(chunk), chunk.Length));
        return result;
    }

    public static void Write(ToyEvaluatorSanityResult result, string folder)
    {
        AtomicFile.WriteAllText(Path.Combine(folder, JsonFile), JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(folder, MarkdownFile), Markdown(result));
    }

    public static string Markdown(ToyEvaluatorSanityResult r)
    {
        var c = CultureInfo.InvariantCulture;
        string P(double v) => (100 * v).ToString("F1", c) + "%";
        string F(double v) => v.ToString("F1", c);
        string D(double v) => v.ToString("F3", c);
        var sb = new StringBuilder();
        sb.Append($"# Toy evaluators: sanity (world seed {r.WorldSeed})\n\n");
        sb.Append($"CLIP-T, {r.CaptionForImage.Queries} held-out scenes and their full captions:\n\n| direction | recall@1 | chance | mean rank | chance |\n|---|---:|---:|---:|---:|\n");
        sb.Append($"| image → its caption among {r.CaptionForImage.Candidates} | {P(r.CaptionForImage.Top1)} | {P(r.CaptionForImage.ChanceTop1)} | {F(r.CaptionForImage.MeanRank)} | {F(r.CaptionForImage.ChanceMeanRank)} |\n");
        sb.Append($"| caption → its image among {r.ImageForCaption.Candidates} | {P(r.ImageForCaption.Top1)} | {P(r.ImageForCaption.ChanceTop1)} | {F(r.ImageForCaption.MeanRank)} | {F(r.ImageForCaption.ChanceMeanRank)} |\n\n");
        sb.Append($"DINO and CLIP-I, 12 subjects × {r.SubjectViews} held-out views ({r.Instances} instance images each):\n\n");
        sb.Append("| metric | nearest view same subject | chance | mean rank of same-subject views | chance | subject by instances | chance | beats plain class object | cos same subject | cos other subject |\n");
        sb.Append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        foreach (var s in new[] { r.Dino, r.ClipI })
            sb.Append($"| {(s.Metric == "dino" ? "DINO" : "CLIP-I")} | {P(s.Retrieval.Top1)} | {P(s.Retrieval.ChanceTop1)} | {F(s.Retrieval.MeanRank)} | {F(s.Retrieval.ChanceMeanRank)} | " +
                      $"{P(s.Classification)} | {P(s.ChanceClassification)} | {P(s.BeatsPlainClass)} | {D(s.SameSubject)} | {D(s.OtherSubject)} |\n");
        sb.Append("\nMean ranks count from 1 among the wrong candidates (other captions; other subjects' views). \"Beats plain class object\": the view is more similar " +
                  "to its subject's instance images than the same scene with a plain object of the subject's class and base colour (chance 50%).\n");
        return sb.ToString();
    }
}
