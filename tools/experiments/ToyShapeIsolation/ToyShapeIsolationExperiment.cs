using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.Experiments.Claims;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Files;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Judge;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.Experiments.ToyShapeIsolation;

/// <summary>
/// Can the toy UNet learn to draw the shape a word names when little else varies? A UNet trained on the whole world
/// alone draws the caption's colour and place but its shape hardly more often than chance, large objects included. This
/// trains the toy recipe's UNet stage (same base, optimizer, loss, schedule, batch) on a narrowed world: one large object
/// on a plain background, every caption full ("a large red star on the left, plain blue background";
/// <see cref="World.PlainScene"/>), then judges the shape of its samples for held-out scenes of that kind at guidance 1
/// and 7.5, beside another model (--compare) on the same prompts and seeds. Shape learned here and not by a whole-world
/// model: the whole world's variety (or its compute) is what keeps it; at chance here too: the conditioning path itself.
/// The world's factors can be put back one at a time to find which one it is: other sizes, textured backgrounds, a
/// loss weighted to the object, partial training captions.
/// </summary>
public static class ToyShapeIsolationExperiment
{
    private static readonly double[] Guidances = [1, 7.5];

    public static int RunCommand(string[] args, string root)
    {
        string? baseModel = null, compare = null, outDir = null;
        int images = 10_000, steps = 3000, prompts = 48, seedsPerPrompt = 2;
        long seed = 0, worldSeed = 0;
        ToySize[] sizes = [ToySize.Large];
        BackgroundTexture[] textures = [BackgroundTexture.Plain];
        double? unmaskedWeight = null;
        double lr = new ToyModelOptions().UnetLr;
        var captions = CaptionStyle.Full;
        var drop = new HashSet<string>();
        bool evalOnly = false, whiten = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--base": baseModel = Next(); break;
                case "--compare": compare = Next(); break;
                case "--out": outDir = Next(); break;
                case "--images": images = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--steps": steps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--prompts": prompts = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--seed": seed = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--sizes":
                    var sizeText = Next();
                    sizes = ToyGrammar.ParseSizes(sizeText) ?? throw new ArgumentException($"--sizes takes small, medium and large, separated by commas (got {sizeText})");
                    break;
                case "--textures":
                    var textureText = Next();
                    textures = ToyGrammar.ParseTextures(textureText) ?? throw new ArgumentException($"--textures takes plain, gradient, striped and checked, separated by commas (got {textureText})");
                    break;
                case "--lr":
                    lr = double.Parse(Next(), CultureInfo.InvariantCulture);
                    if (!(lr > 0) || !double.IsFinite(lr)) throw new ArgumentException($"--lr takes a positive learning rate (got {lr})");
                    break;
                case "--masked-loss":
                    unmaskedWeight = double.Parse(Next(), CultureInfo.InvariantCulture);
                    if (unmaskedWeight is not (>= 0 and <= 1)) throw new ArgumentException($"--masked-loss takes the background's weight in 0..1 (got {unmaskedWeight})");
                    break;
                case "--captions":
                    captions = Next() switch
                    {
                        "full" => CaptionStyle.Full, "training" => CaptionStyle.Training,
                        var other => throw new ArgumentException($"--captions takes full or training (got {other})"),
                    };
                    break;
                case "--eval-drop":
                    foreach (var word in Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                        drop.Add(word is "size" or "colour" or "position" or "background" ? word
                            : throw new ArgumentException($"--eval-drop takes size, colour, position and background, separated by commas (got {word})"));
                    break;
                case "--eval-only": evalOnly = true; break;
                case "--whiten-conditioning": whiten = true; break;
                case "--world-seed": worldSeed = World.CheckSeed(long.Parse(Next(), CultureInfo.InvariantCulture)); break;
                case "--threads": TorchSharp.torch.set_num_threads(int.Parse(Next(), CultureInfo.InvariantCulture)); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        if (baseModel is null)
        {
            Console.Error.WriteLine("toy-shape-isolation needs --base DIR: a toy recipe's untrained base folder (OUT/base of dpeft toy-model train)");
            return 2;
        }
        outDir ??= Path.Combine(root, "runs", "toy-shape-isolation");
        var commit = CommitInfo.Read(root);
        Console.WriteLine($"commit {commit}; writing {outDir}");

        var data = Path.Combine(outDir, "data");
        var done = Path.Combine(data, "done.json");
        var run = Path.Combine(outDir, "unet");
        // A probe judges a trained run again: with nothing trained it is refused before any data is written.
        if (evalOnly && !Directory.Exists(Path.Combine(run, FullFineTuneTarget.ModelFolder)))
        {
            Console.Error.WriteLine($"--eval-only: {run} has no trained model yet; run without it first");
            return 2;
        }
        // What the data folder holds: a rerun into the same --out resumes only on the same scenes (its UNet run trained on them).
        var sizeList = ToyGrammar.SizeList(sizes);
        var textureList = ToyGrammar.TextureList(textures);
        bool plainOnly = textures is [BackgroundTexture.Plain], masked = unmaskedWeight is not null;
        var written = new JsonObject { ["images"] = images, ["world_seed"] = worldSeed, ["sizes"] = sizeList };
        // Keys only where they differ from the first experiments', so that their data folders are still recognised.
        if (!plainOnly) written["textures"] = textureList;
        if (masked) written["masks"] = true;
        if (captions == CaptionStyle.Training) written["captions"] = "training";
        if (!File.Exists(done))
        {
            ToyWorldFiles.WritePlainDataset(data, worldSeed, images, sizes, masked, textures, captions);
            AtomicFile.WriteAllText(done, written.ToJsonString());
        }
        else if (File.ReadAllText(done) is var before && before != written.ToJsonString())
        {
            Console.Error.WriteLine($"{data} holds other scenes ({before}) than asked ({written.ToJsonString()}): give another --out");
            return 2;
        }
        if (!evalOnly)
        {
            // The recipe's UNet stage exactly (the plain v loss), but for the data and its validation images.
            var config = ToyModelRecipe.UnetStage(new ToyModelOptions { Seed = seed, ValidateEvery = 0, UnetUnmaskedWeight = unmaskedWeight, UnetLr = lr, UnetWhitenConditioning = whiten }, baseModel, data, run, steps);
            var result = DreamBoothRun.Run(config, new ConsoleProgress(), CancellationToken.None);
            if (result.Interrupted) return 1;
        }

        var evalPrompts = Prompts(prompts, worldSeed, sizes, textures, drop);
        // A probe with words dropped writes beside the run's own results, not over them.
        string suffix = drop.Count == 0 ? "" : "-no-" + string.Join("-", drop.Order());
        var report = new JsonObject
        {
            ["commit"] = commit.ToString(), ["images"] = images, ["steps"] = steps, ["lr"] = lr, ["whiten_conditioning"] = whiten, ["seed"] = seed, ["world_seed"] = worldSeed, ["sizes"] = sizeList, ["textures"] = textureList, ["captions"] = captions == CaptionStyle.Full ? "full" : "training", ["unmasked_weight"] = unmaskedWeight, ["base"] = baseModel, ["compare"] = compare,
            ["prompts"] = evalPrompts.Count, ["eval_dropped"] = new JsonArray(drop.Order().Select(d => (JsonNode?)d).ToArray()), ["seeds_per_prompt"] = seedsPerPrompt,
        };
        var md = new StringBuilder();
        var objects = sizes is [ToySize.Large] ? "one large object" : $"one object ({string.Join(", ", sizes).ToLowerInvariant()})";
        var backgrounds = plainOnly ? "a plain background" : $"{textureList.Replace(",", ", ")} backgrounds";
        md.AppendLine($"# Toy shape isolation: {objects} on {backgrounds}, {(captions == CaptionStyle.Full ? "full captions" : "partial training captions (judged on full ones)")}{(masked ? $", loss masked to the object (background weight {unmaskedWeight})" : "")}{(drop.Count == 0 ? "" : $"; judged on prompts without their {string.Join(", ", drop.Order())}")}\n");
        md.AppendLine($"{images:N0} training scenes, {steps:N0} steps at learning rate {lr.ToString(CultureInfo.InvariantCulture)}{(whiten ? " on whitened text states" : "")} (the recipe's UNet stage otherwise), {evalPrompts.Count} held-out prompts × {seedsPerPrompt} seeds, commit {commit}." +
                      (compare is null ? "\n" : $" Compared: {compare}.\n"));
        md.AppendLine("| model | guidance | shape [95% Wilson] | colour | position | background colour |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        // With several textures, shape per texture too: whether a model that misses shape overall draws it on some backgrounds.
        var byTexture = new StringBuilder("\n| model | guidance | " + string.Join(" | ", textures.Select(t => $"shape on {ToyGrammar.Word(t)} [95% Wilson] (n)")) +
                                          " |\n| --- | --- |" + string.Concat(textures.Select(_ => " ---: |")) + "\n");
        var models = new List<(string Name, string Folder)> { ("isolated", Path.Combine(run, FullFineTuneTarget.ModelFolder)) };
        if (compare is not null) models.Add(("compared", compare));
        foreach (var (name, folder) in models)
        {
            using var model = StableDiffusionLoader.Load(folder);
            foreach (double g in Guidances)
            {
                var (acc, perTexture, sheet) = Judge(model, evalPrompts, seedsPerPrompt, g, textures);
                ContactSheet.Write(Path.Combine(outDir, $"samples-{name}{suffix}-cfg{g.ToString(CultureInfo.InvariantCulture)}.png"), sheet, columns: 8, scale: 2);
                string A(JudgeAttribute a) => acc.Accuracy(a) is { } v ? (100 * v).ToString("F1", CultureInfo.InvariantCulture) + "%" : "–";
                int n = acc.Count(JudgeAttribute.Shape);
                var shape = ConfidenceIntervals.Wilson(acc.Correct(JudgeAttribute.Shape), n);
                var (lo, hi) = (shape.Lower, shape.Upper);
                report[$"{name} cfg {g.ToString(CultureInfo.InvariantCulture)}"] = new JsonObject
                {
                    // An attribute no prompt names (a probe's dropped word) has no accuracy: null here, "–" in the table.
                    ["shape"] = acc.Accuracy(JudgeAttribute.Shape), ["shape_ci"] = new JsonArray(lo, hi), ["colour"] = acc.Accuracy(JudgeAttribute.Colour),
                    ["position"] = acc.Accuracy(JudgeAttribute.Position), ["background_colour"] = acc.Accuracy(JudgeAttribute.BackgroundColour), ["n"] = n,
                    ["shape_by_texture"] = new JsonObject(textures.Where(t => perTexture[t].Count(JudgeAttribute.Shape) > 0).Order().Select(t => KeyValuePair.Create(ToyGrammar.Word(t),
                        (JsonNode?)new JsonObject { ["shape"] = perTexture[t].Accuracy(JudgeAttribute.Shape), ["n"] = perTexture[t].Count(JudgeAttribute.Shape) }))),
                };
                byTexture.Append(string.Create(CultureInfo.InvariantCulture, $"| {name} | {g} |"));
                foreach (var t in textures)
                {
                    int tn = perTexture[t].Count(JudgeAttribute.Shape);
                    byTexture.Append(tn == 0 ? " – |" : $" {ShapeCell(ConfidenceIntervals.Wilson(perTexture[t].Correct(JudgeAttribute.Shape), tn))} ({tn}) |");
                }
                byTexture.AppendLine();
                md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {g} | {ShapeCell(shape)} | {A(JudgeAttribute.Colour)} | {A(JudgeAttribute.Position)} | {A(JudgeAttribute.BackgroundColour)} |"));
                Console.WriteLine($"{name}, guidance {g}: shape {A(JudgeAttribute.Shape)} [{lo:P1}, {hi:P1}], colour {A(JudgeAttribute.Colour)}, position {A(JudgeAttribute.Position)}");
            }
        }
        if (!plainOnly) md.Append(byTexture);
        md.AppendLine("\nChance: shape 12.5%, colour 10%, position 11.1%.");
        AtomicFile.WriteAllText(Path.Combine(outDir, $"results{suffix}.json"), report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(outDir, $"results{suffix}.md"), md.ToString());
        Console.WriteLine($"wrote {outDir}/results{suffix}.md");
        return 0;
    }

    /// <summary>
    /// Held-out plain scenes (combinations no training scene shows), <paramref name="count"/> distinct captions cycling through
    /// the eight shapes; the words in <paramref name="drop"/> (size, colour, position, background) left out of every caption,
    /// chosen from the same scenes as the full captions, so that a probe's prompts pair with the run's own.
    /// </summary>
    public static List<string> Prompts(int count, long worldSeed, IReadOnlyList<ToySize>? sizes = null, IReadOnlyList<BackgroundTexture>? textures = null,
        IReadOnlySet<string>? drop = null)
    {
        var world = new World(worldSeed);
        var shapes = Enum.GetValues<ToyShape>();
        var list = new List<string>();
        for (long i = 0; list.Count < count; i++)
        {
            var scene = world.PlainScene(World.HeldOutStart + i, sizes, textures);
            var wanted = shapes[list.Count % shapes.Length];
            var caption = scene.FullCaption().ToText();
            // Held-out combinations of one kind are few (about 45 a shape): a repeated caption would be a repeated image.
            if (scene.Main.Shape != wanted || list.Contains(caption)) continue;
            list.Add(caption);
        }
        if (drop is null || drop.Count == 0) return list;
        return list.Select(text =>
        {
            var c = ToyCaption.Parse(text);
            var main = c.Main with
            {
                Size = drop.Contains("size") ? null : c.Main.Size,
                Colour = drop.Contains("colour") ? null : c.Main.Colour,
                Position = drop.Contains("position") ? null : c.Main.Position,
            };
            return (c with { Main = main, Background = drop.Contains("background") ? null : c.Background }).ToText();
        }).ToList();
    }

    /// <summary>Shape's accuracy with its 95% Wilson interval: "45.8% [36.2, 55.8]".</summary>
    private static string ShapeCell(Interval ci) =>
        string.Create(CultureInfo.InvariantCulture, $"{100 * ci.Estimate:F1}% [{100 * ci.Lower:F1}, {100 * ci.Upper:F1}]");

    private static (JudgeAccuracy All, Dictionary<BackgroundTexture, JudgeAccuracy> ByTexture, List<(RgbImage, string)> Sheet) Judge(
        StableDiffusionModel model, List<string> prompts, int seedsPerPrompt, double guidance, IReadOnlyList<BackgroundTexture> textures)
    {
        var acc = new JudgeAccuracy();
        var byTexture = textures.ToDictionary(t => t, _ => new JudgeAccuracy());   // the prompts' scenes are drawn from these textures
        var sheet = new List<(RgbImage, string)>();
        using var scheduler = model.CreateScheduler("default");
        var pipeline = new StableDiffusionPipeline(model, scheduler);
        var calls = prompts.SelectMany(p => Enumerable.Range(0, seedsPerPrompt).Select(s => (Prompt: p, Seed: (long)s))).ToList();
        foreach (var chunk in calls.Chunk(16))
        {
            using var generated = pipeline.Run(new PipelineCall
            {
                Prompts = chunk.Select(c => c.Prompt).ToArray(), Seeds = chunk.Select(c => c.Seed).ToArray(),
                Width = 64, Height = 64, Steps = 25, GuidanceScale = guidance,
            });
            var images = ImageTensors.ToRgb(generated.Images);
            for (int k = 0; k < chunk.Length; k++)
            {
                var score = SceneJudge.Score(images[k], chunk[k].Prompt);
                acc.Add(score);
                byTexture[CaptionParser.Parse(chunk[k].Prompt).Background?.Texture ?? BackgroundTexture.Plain].Add(score);
                if (sheet.Count < 32 && chunk[k].Seed == 0) sheet.Add((images[k], chunk[k].Prompt));
            }
        }
        return (acc, byTexture, sheet);
    }

    private sealed class ConsoleProgress : ITrainingProgress
    {
        private DateTime _last = DateTime.MinValue;
        public void Info(string message) => Console.WriteLine(message);
        public void Warning(string message) => Console.WriteLine($"warning: {message}");
        public void Step(StepReport r)
        {
            if (DateTime.UtcNow - _last < TimeSpan.FromSeconds(30) && r.Step != r.TotalSteps) return;
            _last = DateTime.UtcNow;
            Console.WriteLine($"step {r.Step}/{r.TotalSteps} loss {r.Loss:F4} {r.StepsPerSecond:F2} it/s, left {r.Remaining:hh\\:mm\\:ss}");
        }
    }
}
