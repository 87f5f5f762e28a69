using System.Diagnostics;
using System.Text;
using System.Text.Json;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Core.Text;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Experiments.Claims;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;
using DiffusionPeft.ToyWorld.Vocabulary;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.Experiments.ToyClipShape;

/// <summary>One way of training the toy CLIP: its image tower, and how many shape-swapped captions each image must also rank below its own.</summary>
public sealed record ToyClipShapeArm(string Name, bool StrideOneTower, int ShapeNegatives)
{
    public static IReadOnlyList<ToyClipShapeArm> All { get; } =
    [
        new("recipe", false, 0),
        new("shape-negatives", false, 3),
        new("stride-1 tower + shape-negatives", true, 3),
    ];
}

public sealed record ToyClipShapeConfig
{
    public int Steps { get; init; } = 1500;
    public int Batch { get; init; } = 64;
    public double Lr { get; init; } = 1e-3;
    public int WarmupSteps { get; init; } = 100;
    public int TrainScenes { get; init; } = 20_000;
    public int HeldOutScenes { get; init; } = 512;
    public long Seed { get; init; }
    public int Threads { get; init; } = 2;
}

/// <summary>What one arm measured on the held-out scenes after training.</summary>
public sealed record ToyClipShapeResult(string Arm, int Steps, double FinalLoss, double CaptionTop1, int ShapeRight, int ShapeScenes,
                                        double ShapeChange, double ColourChange, double Seconds);

/// <summary>
/// Can the toy CLIP's contrastive stage be made to tell shapes apart? Each arm trains a CLIP from scratch at the recipe's
/// sizes (text encoder width 128, 4 layers; AdamW, cosine with warmup; the recipe's 20,000 training scenes with partial
/// captions drawn anew each epoch), then measures on held-out scenes: caption retrieval top-1 among 256; shape top-1, the
/// share of scenes whose image ranks its own full caption first among the eight captions that differ only in the main
/// shape (chance 1/8, Wilson 95% interval); and how far the text encoder's states (all 32 positions, relative L2) move when
/// the caption's main shape, or its colour, is changed to the next one: the conditioning the UNet would get.
/// Shape negatives follow NegCLIP (Yuksekgonul et al. 2023, "When and why vision-language models behave like
/// bags-of-words"): each image's own training caption with the main shape swapped, as extra image→text negatives;
/// swaps stay inside the training split. The stride-1 tower adds a 3×3 stride-1 convolution before the recipe tower's three
/// stride-2 ones (as a supervised shape classifier, that tower named 97.7% of held-out shapes against 87.5%).
/// </summary>
public static class ToyClipShapeExperiment
{
    public static ToyClipShapeResult Run(ToyClipShapeArm arm, ToyClipShapeConfig config, TextWriter log)
    {
        torch.set_num_threads(config.Threads);
        var clock = Stopwatch.StartNew();
        var world = new World(0);
        var tokenizer = ToyVocabulary.CreateTokenizer();
        manual_seed(config.Seed + 2);
        using var clip = new ShapeArmClip(ToyModelConfigs.TextEncoder(tokenizer), 128, arm.StrideOneTower);
        var scenes = new SceneImages(world, config.TrainScenes);
        var shapes = Enum.GetValues<ToyShape>();
        using var optimizer = optim.AdamW(clip.parameters(), config.Lr, weight_decay: 0.01);
        var rng = new Random((int)config.Seed);
        var order = Enumerable.Range(0, scenes.Count).OrderBy(_ => rng.Next()).ToArray();
        int next = 0;
        long epoch = 0;
        double smoothed = double.NaN;
        for (int step = 1; step <= config.Steps; step++)
        {
            using var scope = NewDisposeScope();
            if (next + config.Batch > order.Length) { order = order.OrderBy(_ => rng.Next()).ToArray(); next = 0; epoch++; }
            var items = order[next..(next + config.Batch)];
            next += config.Batch;
            var captions = items.Select(i => world.TrainingCaption(i, epoch)).ToArray();
            var image = clip.Image(scenes.Pixels(items));
            var text = clip.Text(Tokens(tokenizer, captions.Select(c => c.ToText())));
            var scale = clip.logit_scale.exp().clamp_max(100f);
            var logits = image.matmul(text.t()) * scale;
            var imageToText = logits;
            if (arm.ShapeNegatives > 0)
            {
                var negatives = items.Zip(captions).SelectMany(p => ShapeSwaps(world, p.First, p.Second, arm.ShapeNegatives, rng, shapes)).ToList();
                var negative = clip.Text(Tokens(tokenizer, negatives)).view(config.Batch, arm.ShapeNegatives, -1);
                imageToText = cat([logits, negative.matmul(image.unsqueeze(-1)).squeeze(-1) * scale], 1);
            }
            var labels = arange(config.Batch, ScalarType.Int64);
            var loss = (functional.cross_entropy(imageToText, labels) + functional.cross_entropy(logits.t(), labels)) / 2;
            double lr = step <= config.WarmupSteps ? config.Lr * step / config.WarmupSteps
                : config.Lr * 0.5 * (1 + Math.Cos(Math.PI * (step - config.WarmupSteps) / Math.Max(1, config.Steps - config.WarmupSteps)));
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            float value = loss.item<float>();
            if (!float.IsFinite(value)) throw new InvalidOperationException($"{arm.Name}: the loss is {value} at step {step}");
            smoothed = double.IsNaN(smoothed) ? value : 0.98 * smoothed + 0.02 * value;
            if (step % 100 == 0 || step == config.Steps)
                log.WriteLine($"{arm.Name}: step {step}/{config.Steps} loss {smoothed:F3} ({clock.Elapsed.TotalSeconds / step:F2} s/step)");
        }
        var (captionTop1, shapeRight, shapeChange, colourChange) = Measure(clip, tokenizer, world, config.HeldOutScenes);
        return new ToyClipShapeResult(arm.Name, config.Steps, smoothed, captionTop1, shapeRight, config.HeldOutScenes, shapeChange, colourChange,
                                      clock.Elapsed.TotalSeconds);
    }

    /// <summary>Runs every arm (a finished arm's result.json is kept) and writes results.md and results.json to <paramref name="outDir"/>.</summary>
    public static int RunCommand(string[] args, string repoRoot)
    {
        var config = new ToyClipShapeConfig();
        string outDir = Path.Combine(repoRoot, "docs", "experiments", "toy-clip-shape");
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--steps": config = config with { Steps = int.Parse(Next()) }; break;
                case "--threads": config = config with { Threads = int.Parse(Next()) }; break;
                case "--seed": config = config with { Seed = long.Parse(Next()) }; break;
                case "--quick": config = config with { Steps = 20, WarmupSteps = 5, TrainScenes = 512, HeldOutScenes = 64 }; break;
                case "--out": outDir = Next(); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        Directory.CreateDirectory(outDir);
        var commit = CommitInfo.Read(repoRoot);
        Console.WriteLine($"commit {commit}; writing {outDir}");
        var results = new List<ToyClipShapeResult>();
        foreach (var arm in ToyClipShapeArm.All)
        {
            var path = Path.Combine(outDir, $"arm-{results.Count}.json");
            var kept = File.Exists(path) ? JsonSerializer.Deserialize<ToyClipShapeResult>(File.ReadAllText(path)) : null;
            var result = kept is not null && kept.Arm == arm.Name && kept.Steps == config.Steps && kept.ShapeScenes == config.HeldOutScenes ? kept : Run(arm, config, Console.Out);
            AtomicFile.WriteAllText(path, JsonSerializer.Serialize(result));
            results.Add(result);
            Console.WriteLine(Row(result));
        }
        AtomicFile.WriteAllText(Path.Combine(outDir, "results.json"), JsonSerializer.Serialize(new { commit = commit.ToString(), config, results }, new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(outDir, "results.md"), Markdown(results, config, commit));
        return 0;
    }

    private static string Row(ToyClipShapeResult r)
    {
        var shape = ConfidenceIntervals.Wilson(r.ShapeRight, r.ShapeScenes);
        return $"| {r.Arm} | {r.FinalLoss:F3} | {r.CaptionTop1:P1} | {shape.Estimate:P1} [{shape.Lower * 100:F1}, {shape.Upper * 100:F1}] | {r.ShapeChange:F3} | {r.ColourChange:F3} | {r.Seconds / 60:F0} |";
    }

    private static string Markdown(IReadOnlyList<ToyClipShapeResult> results, ToyClipShapeConfig config, CommitInfo commit)
    {
        var md = new StringBuilder();
        md.AppendLine("# Toy CLIP: can the contrastive stage learn shape?\n");
        md.AppendLine($"Commit {commit}; world seed 0, seed {config.Seed}; {config.Steps} steps × {config.Batch} pairs, AdamW {config.Lr} cosine " +
                      $"({config.WarmupSteps} warmup), {config.TrainScenes:N0} training scenes; measured on {config.HeldOutScenes} held-out scenes. " +
                      "Command: `dotnet run -c Release --project tools/experiments -- toy-clip-shape`.\n");
        md.AppendLine($"| arm | final loss | caption top-1 (of {Math.Min(256, config.HeldOutScenes)}) | shape top-1 (of 8; chance 12.5%) [95% Wilson] | text states moved by the shape word | by the colour word | minutes |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results) md.AppendLine(Row(r));
        return md.ToString();
    }

    private static Tensor Tokens(ClipTokenizer tokenizer, IEnumerable<string> captions) => ContrastiveObjective.Tokens(tokenizer, captions, CPU);

    private static IEnumerable<string> ShapeSwaps(World world, int index, ToyCaption caption, int count, Random rng, ToyShape[] shapes)
    {
        var scene = world.Scene(index);
        var others = shapes.Where(s => s != caption.Main.Shape
                                        && SceneSampler.SplitOf(world.Seed, scene.Main with { Shape = s }, scene.Background) == SceneSplit.Train)
                           .OrderBy(_ => rng.Next()).ToList();
        if (others.Count == 0) others = shapes.Where(s => s != caption.Main.Shape).ToList();
        return Enumerable.Range(0, count).Select(j => (caption with { Main = caption.Main with { Shape = others[j % others.Count] } }).ToText());
    }

    private static (double CaptionTop1, int ShapeRight, double ShapeChange, double ColourChange) Measure(ShapeArmClip clip, ClipTokenizer tokenizer, World world, int count)
    {
        clip.eval();
        var retrieval = ToyClipRetrieval.HeldOut(clip.Image, clip.Text, c => Tokens(tokenizer, c), world, count, CPU, captionCandidates: 256);
        int shapeRight = (int)Math.Round(retrieval.ShapeTop1 * count);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var shapes = Enum.GetValues<ToyShape>();
        var colours = Enum.GetValues<ToyColour>();
        var sample = Enumerable.Range(0, Math.Min(128, count)).Select(i => world.FullCaption(World.HeldOutStart + i)).ToArray();
        double Change(Func<ToyCaption, ToyCaption> change)
        {
            var before = clip.text_model.Forward(Tokens(tokenizer, sample.Select(c => c.ToText()))).LastHiddenState.flatten(1);
            var after = clip.text_model.Forward(Tokens(tokenizer, sample.Select(c => change(c).ToText()))).LastHiddenState.flatten(1);
            return ((after - before).norm(1) / before.norm(1)).mean().item<float>();
        }
        double shapeChange = Change(c => c with { Main = c.Main with { Shape = shapes[((int)c.Main.Shape + 1) % shapes.Length] } });
        double colourChange = Change(c => c with { Main = c.Main with { Colour = colours[((int)(c.Main.Colour ?? 0) + 1) % colours.Length] } });
        return (retrieval.CaptionTop1, shapeRight, shapeChange, colourChange);
    }
}

/// <summary>The toy CLIP of one arm: the recipe's text encoder and projection, and the recipe's image tower or the stride-1 one.</summary>
internal sealed class ShapeArmClip : Module
{
    public readonly CLIPTextModel text_model;
    public readonly Linear text_projection;
    public readonly Module<Tensor, Tensor> vision_model;
    public readonly Parameter logit_scale;

    public ShapeArmClip(ClipTextConfig text, int embedDim, bool strideOneTower) : base(nameof(ShapeArmClip))
    {
        text_model = new CLIPTextModel(text);
        text_projection = Linear(text.HiddenSize, embedDim, hasBias: false);
        vision_model = strideOneTower ? new StrideOneImageTower(embedDim) : new ToyImageEncoder(embedDim);
        logit_scale = new Parameter(tensor(MathF.Log(1 / 0.07f)));
        RegisterComponents();
    }

    public Tensor Text(Tensor ids) => functional.normalize(text_projection.call(text_model.Forward(ids).PooledOutput), dim: -1);
    public Tensor Image(Tensor pixels) => functional.normalize(vision_model.call(pixels), dim: -1);
}

/// <summary><see cref="ToyImageEncoder"/> with a 3×3 stride-1 convolution (and GELU) at 32 px before its three stride-2 ones.</summary>
internal sealed class StrideOneImageTower : Module<Tensor, Tensor>
{
    private readonly Conv2d conv0;
    private readonly ToyImageEncoder tower;

    public StrideOneImageTower(int embedDim, int width = 32) : base(nameof(StrideOneImageTower))
    {
        conv0 = Conv2d(3, width, 3, padding: 1);
        tower = new ToyImageEncoder(embedDim, width, inChannels: width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return tower.Embed(functional.gelu(conv0.call(functional.avg_pool2d(pixels, 2)))).MoveToOuterDisposeScope();
    }
}
