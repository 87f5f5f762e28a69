using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Judge;
using DiffusionPeft.ToyWorld.Scenes;
using DiffusionPeft.ToyWorld.Files;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// How well a model draws what held-out captions say, read back by the scene judge: per held-out scene its full
/// caption and a partial one, one image each (fixed seeds, the model's default sampler and guidance), accuracy per
/// attribute the caption mentions. Beside it, the ceiling the VAE allows: the held-out scene itself, encoded and decoded
/// by the model's VAE, judged on the same caption (a UNet can do no better than the decoder can draw). Optionally, the
/// <see cref="DiffusionClassifier"/> on the first held-out scenes: whether the UNet's denoising depends on each word at
/// all. Images and a report (JSON + Markdown) go to the output folder. With <see cref="SceneSplit.Train"/> the same is
/// done on the first training scenes, with the captions the UNet trained on: what the model draws for scenes it saw,
/// beside the held-out combinations it never saw (a model that draws the first far better than the second learned the
/// scenes rather than the words).
/// </summary>
public static class ToyModelEvaluation
{
    /// <summary>Prompts the UNet stage renders at every validation step (fixed, so the grids show progress).</summary>
    public static IReadOnlyList<string> ValidationPrompts { get; } =
    [
        "a red circle", "a blue square on the left", "a large yellow star at the top right, plain purple background", "a green heart on a white background",
    ];

    /// <summary>How the held-out captions are sampled: the model's default sampler with these settings (guidance null: the
    /// model's default, <see cref="StableDiffusionModel.DefaultGuidanceScale"/>); scene j's two captions use seed + 2j and seed + 2j + 1.</summary>
    public sealed record EvaluationSampling(int Steps = 25, double? Guidance = null, double GuidanceRescale = 0, GuidanceInterval? Interval = null,
                                            long Seed = 0, int Batch = 16)
    {
        public GuidanceInterval Interval { get; init; } = Interval ?? GuidanceInterval.Always;

        /// <summary>The ranges generate enforces (steps 1..1000, a finite guidance ≥ 0, a rescale in [0, 1]), with its messages.</summary>
        public void Validate(string where) =>
            new GenerationOptions { Prompt = "a toy-world caption", Steps = Steps, GuidanceScale = Guidance ?? 0, GuidanceRescale = GuidanceRescale, Width = 64, Height = 64 }
                .Validate(where);
    }

    /// <param name="BySize">All captions' scores grouped by the size word the caption gives its main object
    /// (<see cref="SizeGroups"/>: large, medium, small, and "not said").</param>
    public sealed record Result(JudgeAccuracy Full, JudgeAccuracy Partial, JudgeAccuracy All, JudgeAccuracy VaeRoundTrip, int Images,
                                IReadOnlyList<WordChoice> WordChoices, ShapeConfusion Shapes, IReadOnlyDictionary<string, JudgeAccuracy> BySize,
                                SceneSplit Split = SceneSplit.HeldOut, long FirstScene = 0, double Guidance = GenerationConfig.StableDiffusionGuidanceScale);

    /// <summary>The groups of <see cref="Result.BySize"/>, largest first.</summary>
    public static IReadOnlyList<string> SizeGroups { get; } =
        [.. Enum.GetValues<ToySize>().Reverse().Select(ToyGrammar.Word), NoSizeGroup];

    public const string NoSizeGroup = "not said";

    public static Result Run(StableDiffusionModel model, long worldSeed, int scenes, string outDirectory, EvaluationSampling? sampling = null,
                             Action<int, int>? progress = null, int classifierScenes = 0, Action<int, int>? classifierProgress = null,
                             SceneSplit split = SceneSplit.HeldOut, long firstScene = 0)
    {
        sampling ??= new EvaluationSampling();
        sampling.Validate("toy-model evaluate");
        if (scenes < 0) throw new ArgumentOutOfRangeException(nameof(scenes), $"scenes must be 0 (the diffusion classifier alone) or more, got {scenes}");
        if (classifierScenes < 0) throw new ArgumentOutOfRangeException(nameof(classifierScenes), $"classifier scenes must be 0 (off) or more, got {classifierScenes}");
        var world = new World(worldSeed);
        double guidance = sampling.Guidance ?? model.DefaultGuidanceScale;
        var prompts = split == SceneSplit.HeldOut ? world.HeldOutPrompts(scenes, firstScene) : world.TrainingPrompts(scenes, firstScene);
        // Scene j's full and partial captions get seeds 2j and 2j + 1 (plus the sampling seed), whichever range is run,
        // so that overlapping ranges make the same images and pair in toy-model compare.
        long seedBase = sampling.Seed + 2 * firstScene;
        Directory.CreateDirectory(outDirectory);
        var full = new JudgeAccuracy();
        var partial = new JudgeAccuracy();
        var all = new JudgeAccuracy();
        var roundTrip = new JudgeAccuracy();
        var shapes = new ShapeConfusion();
        var bySize = SizeGroups.ToDictionary(g => g, _ => new JudgeAccuracy());
        var rows = new JsonArray();
        var samples = new List<(RgbImage, string)>();
        using var scheduler = model.CreateScheduler("default");
        var pipeline = new StableDiffusionPipeline(model, scheduler);
        for (int start = 0; start < prompts.Count; start += sampling.Batch)
        {
            var chunk = prompts.Skip(start).Take(sampling.Batch).ToList();
            using var generated = pipeline.Run(new PipelineCall
            {
                Prompts = chunk.Select(p => p.Text).ToArray(), Seeds = chunk.Select((_, k) => seedBase + start + k).ToArray(),
                Width = 64, Height = 64, Steps = sampling.Steps, GuidanceScale = guidance,
                GuidanceRescale = sampling.GuidanceRescale, Interval = sampling.Interval,
            });
            var images = ImageTensors.ToRgb(generated.Images);
            // A scene's full and partial captions sit side by side: render and round-trip each scene once.
            var scenesHere = chunk.Select(p => p.SceneIndex).Distinct().ToList();
            var renderedScenes = scenesHere.Select(world.Render).ToList();
            var decodedScenes = VaeRoundTrip(model, renderedScenes);
            var rendered = chunk.Select(p => renderedScenes[scenesHere.IndexOf(p.SceneIndex)]).ToList();
            var decoded = chunk.Select(p => decodedScenes[scenesHere.IndexOf(p.SceneIndex)]).ToList();
            for (int k = 0; k < chunk.Count; k++)
            {
                if (chunk[k].IsFull && samples.Count < 2 * SampleCount)
                {
                    samples.Add((rendered[k], $"world: {chunk[k].Text}"));
                    samples.Add((images[k], $"model: {chunk[k].Text}"));
                }
                var caption = CaptionParser.Parse(chunk[k].Text);
                var score = SceneJudge.Score(images[k], caption);
                (chunk[k].IsFull ? full : partial).Add(score);
                all.Add(score);
                shapes.Add(caption.Main.Shape, score);
                bySize[caption.Main.Size is { } said ? ToyGrammar.Word(said) : NoSizeGroup].Add(score);
                var ceiling = SceneJudge.Score(decoded[k], caption);
                roundTrip.Add(ceiling);
                var file = $"{start + k:D4}.png";
                PngWriter.Write(Path.Combine(outDirectory, file), images[k], [("prompt", chunk[k].Text)]);
                rows.Add(new JsonObject
                {
                    ["file"] = file, ["prompt"] = chunk[k].Text, ["full"] = chunk[k].IsFull, ["seed"] = seedBase + start + k,
                    ["results"] = Json(score), ["main_read"] = Json(score.MainReading), ["vae_round_trip_results"] = Json(ceiling),
                });
            }
            progress?.Invoke(Math.Min(start + sampling.Batch, prompts.Count), prompts.Count);
        }
        if (samples.Count > 0) ContactSheet.Write(Path.Combine(outDirectory, SamplesFile), samples, columns: 8, scale: 2);
        var choices = classifierScenes > 0 ? DiffusionClassifier.Run(model, worldSeed, classifierScenes, sampling.Seed, progress: classifierProgress, split: split, firstScene: firstScene) : [];
        var result = new Result(full, partial, all, roundTrip, prompts.Count, choices, shapes, bySize, split, firstScene, guidance);
        var report = new JsonObject
        {
            ["model"] = model.Name, ["world_seed"] = worldSeed, ["split"] = SplitName(split), [split == SceneSplit.HeldOut ? "held_out_scenes" : "training_scenes"] = scenes, ["first_scene"] = firstScene, ["steps"] = sampling.Steps, ["guidance"] = guidance,
            ["guidance_rescale"] = sampling.GuidanceRescale, ["guidance_interval"] = sampling.Interval.ToString(),
            ["sampler"] = model.DefaultSamplerKey, ["full"] = Json(full), ["partial"] = Json(partial), ["all"] = Json(all), ["vae_round_trip"] = Json(roundTrip),
            ["shape_confusion"] = Json(shapes),
            ["by_size"] = new JsonObject(SizeGroups.Select(g => KeyValuePair.Create(g, (JsonNode?)Json(bySize[g])))), ["images"] = rows,
        };
        if (choices.Count > 0)
        {
            var classifier = new JsonObject { ["scenes"] = classifierScenes, ["timesteps"] = new JsonArray(DiffusionClassifier.Timesteps.Select(t => (JsonNode?)t).ToArray()),
                                              ["noises_per_timestep"] = DiffusionClassifier.NoisesPerTimestep };
            foreach (var c in choices)
                classifier[c.Attribute.ToString()] = new JsonObject
                {
                    ["accuracy"] = c.Accuracy, ["chance"] = c.Chance, ["count"] = c.Count,
                    ["accuracy_by_timestep"] = new JsonObject(DiffusionClassifier.Timesteps.Select((t, i) => KeyValuePair.Create(t.ToString(), (JsonNode?)c.AccuracyAt(i)))),
                };
            report["diffusion_classifier"] = classifier;
        }
        AtomicFile.WriteAllText(Path.Combine(outDirectory, "evaluation.json"), report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(outDirectory, "evaluation.md"), Markdown(model.Name, result));
        return result;
    }

    /// <summary>The scenes through the model's VAE (encode, the posterior's mode, decode), as images.</summary>
    private static IReadOnlyList<RgbImage> VaeRoundTrip(StableDiffusionModel model, IReadOnlyList<RgbImage> scenes)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var _ = TorchSharp.torch.no_grad();
        var x = TorchSharp.torch.stack(scenes.Select(ImageTensors.ToTensor)).to(model.DType, model.Device);
        var y = model.Vae.forward(x).to_type(TorchSharp.torch.ScalarType.Float32);
        return ImageTensors.ToRgb(((y.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1));
    }

    /// <summary>
    /// <see cref="SamplesFile"/> (+ .txt with the captions): the first <see cref="SampleCount"/> full-caption prompts, each as
    /// the held-out scene the world renders beside what the model made of its caption.
    /// </summary>
    public const int SampleCount = 16;
    public const string SamplesFile = "samples.png";

    private static JsonObject Json(JudgeScore score) =>
        new(score.Results.Select(r => KeyValuePair.Create(r.Attribute.ToString(), (JsonNode?)r.Correct)));

    /// <summary>The object matched to the caption's main object, in the grammar's words (null: none found).</summary>
    private static JsonObject? Json(ObjectReading? o) => o is null ? null : new()
    {
        ["colour"] = ToyGrammar.Word(o.Colour), ["shape"] = ToyGrammar.Word(o.Shape), ["size"] = ToyGrammar.Word(o.Size), ["position"] = o.Position.ToString(),
    };

    /// <summary>{asked shape: {read shape or "none": count}}.</summary>
    private static JsonObject Json(ShapeConfusion c)
    {
        var shapes = Enum.GetValues<ToyShape>();
        return new(shapes.Select(a => KeyValuePair.Create(ToyGrammar.Word(a), (JsonNode?)new JsonObject(
            shapes.Select(r => (ToyShape?)r).Append(null).Select(r => KeyValuePair.Create(r is { } v ? ToyGrammar.Word(v) : "none", (JsonNode?)c.Count(a, r)))))));
    }

    private static JsonObject Json(JudgeAccuracy a)
    {
        var o = new JsonObject { ["scores"] = a.Scores, ["all_correct"] = a.Scores == 0 ? null : (double)a.AllCorrect / a.Scores };
        foreach (var attribute in Enum.GetValues<JudgeAttribute>())
            if (a.Accuracy(attribute) is { } v) o[attribute.ToString()] = new JsonObject { ["accuracy"] = v, ["count"] = a.Count(attribute) };
        return o;
    }

    public static string SplitName(SceneSplit split) => split == SceneSplit.HeldOut ? "held_out" : "train";

    public static string Markdown(string model, Result result)
    {
        var (full, partial, all, vaeRoundTrip) = (result.Full, result.Partial, result.All, result.VaeRoundTrip);
        var (captions, partialColumn, scenes) = result.Split == SceneSplit.HeldOut
            ? ("held-out captions", "partial captions", "the held-out scenes")
            : ("training scenes' captions (scenes the UNet trained on)", "the caption it trained on", "the training scenes");
        var range = result.FirstScene > 0 && result.Images > 0 ? $" (scenes {result.FirstScene}..{result.FirstScene + result.Images / 2 - 1} of the split)" : "";
        var sb = new StringBuilder($"# {model}: judge accuracy on {captions}{range}\n\n");
        sb.Append($"Guidance {result.Guidance.ToString(CultureInfo.InvariantCulture)}.\n\n");
        // --scenes 0 runs the diffusion classifier alone: no image, so no table of images.
        if (result.Images == 0) sb.Append("No images judged (--scenes 0).\n");
        else
        {
            sb.Append($"| attribute | full captions | {partialColumn} | all | {scenes} through the VAE (ceiling) |\n|---|---:|---:|---:|---:|\n");
            foreach (var a in Enum.GetValues<JudgeAttribute>())
                if (all.Accuracy(a) is not null)
                    sb.Append($"| {a} | {Pct(full, a)} | {Pct(partial, a)} | {Pct(all, a)} | {Pct(vaeRoundTrip, a)} |\n");
        }
        if (result.WordChoices.Count > 0)
        {
            var timesteps = DiffusionClassifier.Timesteps;
            sb.Append("\n## Diffusion classifier: does the UNet's denoising depend on the word?\n\n" +
                      "| main object's | own word picked | chance | scenes | " + string.Join(" | ", timesteps.Select(t => $"at t = {t}")) + " |\n" +
                      "|---|---:|---:|---:|" + string.Concat(timesteps.Select(_ => "---:|")) + "\n");
            foreach (var c in result.WordChoices)
                sb.Append($"| {c.Attribute} | {100 * c.Accuracy:F1}% | {100 * c.Chance:F1}% | {c.Count} | " +
                          string.Join(" | ", timesteps.Select((_, i) => $"{100 * c.AccuracyAt(i):F1}%")) + " |\n");
        }
        if (result.Images == 0) return sb.ToString();
        sb.Append("\n## By the size the caption names its main object (all captions)\n\n" +
                  "| size | images | shape | colour | position | size read |\n|---|---:|---:|---:|---:|---:|\n");
        foreach (var g in SizeGroups)
            if (result.BySize.TryGetValue(g, out var acc) && acc.Scores > 0)
                sb.Append($"| {g} | {acc.Scores} | {Pct(acc, JudgeAttribute.Shape)} | {Pct(acc, JudgeAttribute.Colour)} | {Pct(acc, JudgeAttribute.Position)} | {Pct(acc, JudgeAttribute.Size)} |\n");
        sb.Append("\n## Shape: what the judge read where each shape was asked for (all captions)\n\n").Append(result.Shapes.ToMarkdown());
        return sb.ToString();

        static string Pct(JudgeAccuracy acc, JudgeAttribute a) => acc.Accuracy(a) is { } v ? $"{100 * v:F1}% ({acc.Count(a)})" : "–";
    }
}
