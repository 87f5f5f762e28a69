using System.CommandLine;
using System.Globalization;
using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.Cli.Commands;

/// <summary>
/// `dpeft toy-model train`: reproduces the toy Stable Diffusion from nothing (world → VAE → text encoder → UNet);
/// `dpeft toy-model evaluate`: the scene judge's accuracy per attribute on held-out (or training) captions;
/// `dpeft toy-model evaluators`: the toy world's ONNX DINO / CLIP (<see cref="ToyEvaluatorsCommand"/>).
/// </summary>
public static class ToyModelCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var command = new Command("toy-model", "Train the toy-world Stable Diffusion from scratch, measure a model on held-out toy captions, or build the toy world's DINO/CLIP evaluators.");
        command.Subcommands.Add(Train(output, error));
        command.Subcommands.Add(Evaluate(output, error));
        command.Subcommands.Add(Compare(output));
        command.Subcommands.Add(ToyEvaluatorsCommand.Create(output, error));
        return command;
    }

    private static Command Train(TextWriter output, TextWriter error)
    {
        var outDir = new Option<string>("--out") { Description = "Folder for every stage's run and the final diffusers folder OUT/model.", Required = true };
        var device = new Option<string>("--device") { Description = "cpu or cuda.", DefaultValueFactory = _ => "cpu" };
        var seed = new Option<long>("--seed") { Description = "Seed of every initialisation and training RNG.", DefaultValueFactory = _ => 0 };
        var worldSeed = new Option<long>("--world-seed") { Description = "The toy world's seed.", DefaultValueFactory = _ => 0 };
        var vaeSteps = new Option<string?>("--vae-steps") { Description = "VAE optimizer steps (default: the shipped model's); a list (2000,3500) trains to each length in turn, the cosine schedule stretched each time (warm restarts). More on a finished VAE trains it on; the base and UNet made from the old one are moved aside." };
        var clipSteps = new Option<string?>("--clip-steps") { Description = "Text-encoder (contrastive) steps (default: the shipped model's); as --vae-steps." };
        var unetSteps = new Option<string?>("--unet-steps") { Description = "UNet optimizer steps (default: the shipped model's); a list as --vae-steps. More on a finished UNet trains it on." };
        var snrGamma = new Option<string?>("--unet-snr-gamma") { Description = "The UNet's min-SNR γ, or none for the plain v loss (default: none, the shipped model's)." };
        var timesteps = new Option<string?>("--unet-timestep-sampling") { Description = "uniform (default, the shipped model's) or logit_normal (SD3's: more timesteps at mid noise)." };
        var unetWidth = new Option<int?>("--unet-width") { Description = "The UNet's first block width, a multiple of 16 (blocks [w, w, 2w, 2w] on 32×32 latents, [w, 2w, 2w] on 16×16; default: the shipped model's, 32). A new width on a run made with another moves its base and UNet aside." };
        var latentSize = new Option<int?>("--latent-size") { Description = "The latent grid: 32 (default, the shipped model's: the VAE downsamples 2×; the UNet has a level of convolutions on top) or 16 (4×, the models before it). Fixed for a run: another needs another --out." };
        var plainScenes = new Option<int?>("--unet-plain-scenes") { Description = "Scenes of one large object on a plain background (full captions) mixed into the UNet's training data, to teach shape (default: the shipped model's, 15000; 0: none). Another count rewrites the data and moves a UNet trained on the old aside." };
        var plainSizes = new Option<string?>("--unet-plain-sizes") { Description = "The sizes of the plain scenes' objects, drawn uniformly: small, medium and/or large, separated by commas (default: the shipped model's, large). Other sizes rewrite the data and move a UNet trained on the old aside." };
        var topAttention = new Option<string?>("--unet-top-attention") { Description = "On 32×32 latents, attention at the UNet's top level too: none (default, the shipped model's: convolutions only), full (self- and cross-attention) or cross_only (also cross-only; both attentions read the caption: no attention over the 1,024 positions). A change moves the old base and UNet aside." };
        var textEmbedding = new Option<bool>("--unet-text-embedding") { Description = "Add the caption, pooled by attention, to the UNet's timestep embedding (diffusers' addition_embed_type \"text\", DeepFloyd IF's), so it reaches every ResNet block, not only the cross-attention levels (default: off, the shipped model's). It reads the states as they are: give --unet-whiten-conditioning false with it. A change moves the old base and UNet aside." };
        var vaeDType = new Option<string?>("--vae-dtype") { Description = "The VAE stage's compute: fp32 (default, the shipped model's) or bf16 (mixed precision on fp32 master weights; its forward and backward ran 1.25–1.55× faster than fp32 in the toy benchmark on this project’s CPU with AVX512-BF16; fast only there, with AMX or on a GPU). Fixed for the stage's run: a resume in the other is refused." };
        var unetDType = new Option<string?>("--unet-dtype") { Description = "The UNet stage's compute: fp32 (default, the shipped model's), bf16 (mixed precision: bf16 forward and backward on fp32 master weights; fast only on GPUs and CPUs with AVX512-BF16 or AMX) or auto (bf16 where it is fast, else fp32; a resumed UNet run keeps its own). Fixed for a UNet run: another needs the UNet run moved aside." };
        var emaDecay = new Option<string?>("--unet-ema-decay") { Description = "Keep an exponential moving average of the UNet's weights with this maximum decay and write it as the model (dpeft train --ema-decay), or none (default, the shipped model's). May be added or changed when an unfinished UNet stage resumes (added, the average starts from the resumed weights); a finished stage is not retrained." };
        var unetLr = new Option<string?>("--unet-lr") { Description = "The UNet stage's peak learning rate (AdamW, cosine after 200 warm-up steps; default: the shipped model's, 1e-3). Another rate on a UNet run already started, finished or not, is refused: set the run aside (move OUT/unet) to train again." };
        var whiten = new Option<bool?>("--unet-whiten-conditioning") { Description = "Train the UNet on the text encoder's states whitened, folded into its cross-attention when written (dpeft train --whiten-conditioning; default: on, the shipped model's; --unet-whiten-conditioning false: the states as they are, the models before it). Fixed for a UNet run (another is refused, finished or not): compare in a new --out (with --components-from)." };
        var whitenStrength = new Option<string?>("--unet-whiten-strength") { Description = "With --unet-whiten-conditioning: how far to whiten, α in (0, 1] (dpeft train --whiten-strength; default 1, fully; 0.5: part-way, the strong directions kept stronger than the faint ones). Fixed for a UNet run (another is refused, finished or not): try another strength in a new --out (with --components-from)." };
        var unetBatch = new Option<int?>("--unet-batch") { Description = "The UNet stage's batch (default: the shipped model's, 32; a GPU is used well at 128–512, with a higher --unet-lr). Another batch on a UNet run already started, finished or not, is refused." };
        var maskedLoss = new Option<string?>("--unet-masked-loss") { Description = "Train the UNet with a masked loss (dpeft train --masked-loss): the data gets each scene's object mask, and the background counts with this weight in [0, 1]; or none (default, the shipped model's). Captions name the background, so 0 would never teach it. Masks on or off rewrites the data and moves a UNet trained on the old aside; another weight needs the UNet run moved aside by hand (a resume refuses it)." };
        var componentsFrom = new Option<string?>("--components-from") { Description = "Take the tokenizer, VAE and text encoder of this toy model folder (\"embedded\": the embedded default) as finished stages, so that only the UNet's data and stage run: the UNet retrained on those components. Refused on a run that trained (or took) others." };
        var checkpointEvery = new Option<int?>("--checkpoint-every") { Description = "Each stage's checkpoint interval in steps (default 100; a run's last step is always kept). May change on a resume." };
        var defaultCfg = new Option<string?>("--default-cfg") { Description = "The guidance scale written into the model as its default (generation_config.json), used by generate, toy-model evaluate and the demo unless told otherwise (default: the run's own; 4, the shipped model's, chosen on validation scenes, for a run without one). A value on a finished run rewrites that file alone." };
        var validateEvery = new Option<int?>("--validate-every") { Description = "The UNet stage's validation images every N steps (default 500; 0: none). May change on a resume." };
        var miniature = new Option<bool>("--miniature") { Description = "A few dozen steps per stage on tiny widths: a smoke test of the whole chain." };
        var quiet = new Option<bool>("--quiet");
        var threads = new Option<int?>("--threads") { Description = "CPU threads for torch (default: all cores; 1 is faster on a machine busy with other work)." };
        var command = new Command("train", "Reproduce the toy model: VAE, contrastive text encoder, UNet; resumable (rerun the same command).")
        {
            outDir, device, seed, worldSeed, vaeSteps, clipSteps, unetSteps, snrGamma, timesteps, unetWidth, latentSize, plainScenes, plainSizes, topAttention, textEmbedding, vaeDType, unetDType, unetLr, unetBatch, whiten, whitenStrength, emaDecay, maskedLoss, componentsFrom, defaultCfg, checkpointEvery, validateEvery, miniature, quiet, threads,
        };
        command.SetAction(r =>
        {
            var options = (r.GetValue(miniature) ? ToyModelOptions.Miniature : new ToyModelOptions()) with
            {
                Device = r.GetValue(device)!, Seed = r.GetValue(seed), WorldSeed = r.GetValue(worldSeed),
            };
            var lengths = new Dictionary<string, int[]>();
            foreach (var (name, value) in new[] { ("--vae-steps", r.GetValue(vaeSteps)), ("--clip-steps", r.GetValue(clipSteps)), ("--unet-steps", r.GetValue(unetSteps)) })
            {
                if (value is null) continue;
                if (StageLengths(value) is not { } parsed)
                {
                    error.WriteLine($"error: {name} takes step counts of at least 1, increasing, separated by commas (got {value})");
                    return 2;
                }
                lengths[name] = parsed;
            }
            if (lengths.TryGetValue("--vae-steps", out var v)) options = options with { VaeSteps = v };
            if (lengths.TryGetValue("--clip-steps", out var c)) options = options with { ClipSteps = c };
            if (lengths.TryGetValue("--unet-steps", out var u)) options = options with { UnetSteps = u };
            if (r.GetValue(snrGamma) is { } gammaText)
            {
                if (!NumberOrNone(gammaText, g => g > 0 && double.IsFinite(g), out var gamma))
                {
                    error.WriteLine($"error: --unet-snr-gamma takes a positive number or none (got {gammaText})");
                    return 2;
                }
                options = options with { UnetSnrGamma = gamma };
            }
            if (r.GetValue(unetLr) is { } lrText)
            {
                if (!Number(lrText, l => l > 0 && double.IsFinite(l), out var lr))
                {
                    error.WriteLine($"error: --unet-lr takes a positive learning rate (got {lrText})");
                    return 2;
                }
                options = options with { UnetLr = lr };
            }
            if (r.GetValue(unetBatch) is { } batch)
            {
                if (batch < 1)
                {
                    error.WriteLine($"error: --unet-batch takes a batch of at least 1 (got {batch})");
                    return 2;
                }
                options = options with { UnetBatch = batch };
            }
            if (r.GetValue(checkpointEvery) is { } every)
            {
                if (every < 1)
                {
                    error.WriteLine($"error: --checkpoint-every takes a step count of at least 1 (got {every})");
                    return 2;
                }
                options = options with { CheckpointEvery = every };
            }
            if (r.GetValue(defaultCfg) is { } cfgText)
            {
                if (!Number(cfgText, GenerationConfig.IsValidScale, out var cfg))
                {
                    error.WriteLine($"error: --default-cfg takes a guidance scale >= 0 (got {cfgText})");
                    return 2;
                }
                options = options with { GuidanceScale = cfg };
            }
            if (r.GetValue(validateEvery) is { } validate)
            {
                if (validate < 0)
                {
                    error.WriteLine($"error: --validate-every takes a step count, or 0 for none (got {validate})");
                    return 2;
                }
                options = options with { ValidateEvery = validate };
            }
            if (r.GetValue(emaDecay) is { } decayText)
            {
                if (!NumberOrNone(decayText, d => d is > 0 and < 1, out var decay))
                {
                    error.WriteLine($"error: --unet-ema-decay takes a number in (0, 1) or none (got {decayText})");
                    return 2;
                }
                options = options with { UnetEmaDecay = decay };
            }
            if (r.GetValue(maskedLoss) is { } weightText)
            {
                if (!NumberOrNone(weightText, w => w is >= 0 and <= 1, out var weight))
                {
                    error.WriteLine($"error: --unet-masked-loss takes the background's weight in [0, 1] or none (got {weightText})");
                    return 2;
                }
                options = options with { UnetUnmaskedWeight = weight };
            }
            if (r.GetValue(timesteps) is { } sampling)
            {
                if (TrainConfigYaml.ParseEnum<TimestepSampling>(sampling) is not { } parsed)
                {
                    error.WriteLine($"error: --unet-timestep-sampling takes {TrainConfigYaml.EnumNames(typeof(TimestepSampling))} (got {sampling})");
                    return 2;
                }
                options = options with { UnetTimestepSampling = parsed };
            }
            if (r.GetValue(unetWidth) is { } width)
            {
                if (width < 16 || width % 16 != 0)
                {
                    error.WriteLine($"error: --unet-width takes a positive multiple of 16 (got {width})");
                    return 2;
                }
                options = options with { UnetWidth = width };
            }
            if (r.GetValue(latentSize) is { } grid)
            {
                if (!ToyModelConfigs.IsLatentSize(grid))
                {
                    error.WriteLine($"error: --latent-size takes 16 or 32 (got {grid})");
                    return 2;
                }
                options = options with { LatentSize = grid };
            }
            if (r.GetValue(plainScenes) is { } plain)
            {
                if (plain < 0)
                {
                    error.WriteLine($"error: --unet-plain-scenes takes a count of 0 or more (got {plain})");
                    return 2;
                }
                options = options with { UnetPlainScenes = plain };
            }
            if (r.GetValue(plainSizes) is { } sizeText)
            {
                if (ToyGrammar.ParseSizes(sizeText) is not { } sizes)   // never empty: every comma-separated entry must be a size word
                {
                    error.WriteLine($"error: --unet-plain-sizes takes small, medium and/or large, separated by commas (got {sizeText})");
                    return 2;
                }
                options = options with { UnetPlainSizes = sizes };
            }
            if (r.GetValue(topAttention) is { } topText)
            {
                if (TrainConfigYaml.ParseEnum<TopLevelAttention>(topText) is not { } top)
                {
                    error.WriteLine($"error: --unet-top-attention takes {TrainConfigYaml.EnumNames(typeof(TopLevelAttention))} (got {topText})");
                    return 2;
                }
                if (top != TopLevelAttention.None && options.LatentSize != 32)
                {
                    error.WriteLine("error: --unet-top-attention is for 32×32 latents (on 16×16 the UNet's top level has cross-attention already)");
                    return 2;
                }
                options = options with { UnetTopAttention = top };
            }
            if (r.GetValue(textEmbedding)) options = options with { UnetTextEmbedding = true };
            // bool? (as dpeft train's flags): an Option<bool> has a result, false, even when not given, which would undo the default.
            if (r.GetResult(whiten) is not null) options = options with { UnetWhitenConditioning = r.GetValue(whiten) ?? true };
            if (r.GetValue(whitenStrength) is { } strengthText)
            {
                if (!Number(strengthText, a => a > 0 && a <= 1, out var strength))
                {
                    error.WriteLine($"error: --unet-whiten-strength takes a number in (0, 1] (got {strengthText})");
                    return 2;
                }
                if (!options.UnetWhitenConditioning)
                {
                    error.WriteLine("error: --unet-whiten-strength is for --unet-whiten-conditioning");
                    return 2;
                }
                options = options with { UnetWhitenStrength = strength };
            }
            if (r.GetValue(componentsFrom) is { } components) options = options with { ComponentsFrom = components };
            if (r.GetValue(vaeDType) is { } vaeDTypeText)
            {
                if (vaeDTypeText.Trim().ToLowerInvariant() is not ("fp32" or "bf16"))
                {
                    error.WriteLine($"error: --vae-dtype takes fp32 or bf16 (got {vaeDTypeText})");
                    return 2;
                }
                options = options with { VaeDType = vaeDTypeText.Trim().ToLowerInvariant() };
            }
            if (r.GetValue(unetDType) is { } dtypeText)
            {
                if (dtypeText.Trim().ToLowerInvariant() is not ("fp32" or "bf16" or "auto"))
                {
                    error.WriteLine($"error: --unet-dtype takes fp32, bf16 or auto (got {dtypeText})");
                    return 2;
                }
                options = options with { UnetDType = dtypeText.Trim().ToLowerInvariant() };
            }
            if (r.GetValue(threads) is { } n) TorchSharp.torch.set_num_threads(n);
            TorchOptions.ParseDevice(options.Device);
            var progress = new CliTrainingProgress(new ProgressLine(error, "steps", r.GetValue(quiet)));
            using var ctrlC = new ConsoleCancellation(error, "saving a checkpoint; rerun the same command to resume...");
            var recipe = new ToyModelRecipe(r.GetValue(outDir)!, options, progress);
            var reports = recipe.Run(ctrlC.Token);
            foreach (var s in reports)
                output.WriteLine(s.Measurements["source"] is { } source
                    ? $"{s.Stage}: taken from {source}"
                    : $"{s.Stage}: {s.Steps} steps, loss {s.FirstLoss:G4} → {s.LastLoss:G4}, {s.Seconds / 60:F1} min; {s.Measurements.ToJsonString()}");
            output.WriteLine($"toy model written to {recipe.Model} ({reports.Sum(s => s.Seconds) / 60:F0} min of training)");
            return 0;
        });
        return command;
    }

    /// <summary>"none" (null) or a number that <paramref name="valid"/> accepts; false for anything else.</summary>
    private static bool NumberOrNone(string text, Func<double, bool> valid, out double? value)
    {
        value = null;
        if (text == "none") return true;
        if (!Number(text, valid, out var number)) return false;
        value = number;
        return true;
    }

    /// <summary>A number (invariant culture) that <paramref name="valid"/> accepts; false for anything else.</summary>
    private static bool Number(string text, Func<double, bool> valid, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && valid(value);

    /// <summary>"3500" or "2000,3500": a stage's lengths (<see cref="ToyModelOptions.AreStageLengths"/>); null if not.</summary>
    private static int[]? StageLengths(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var lengths = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out lengths[i]))
                return null;
        return ToyModelOptions.AreStageLengths(lengths) ? lengths : null;
    }

    private static Command Compare(TextWriter output)
    {
        var a = new Argument<string>("A") { Description = "An evaluation: its folder (OUT of toy-model evaluate) or its evaluation.json." };
        var b = new Argument<string>("B") { Description = "Another evaluation of the same held-out captions and seeds." };
        var outFile = new Option<string?>("--out") { Description = "Also write the table to this Markdown file." };
        var command = new Command("compare", "Compare two toy-model evaluations image by image: per attribute both accuracies, the images only one gets right, McNemar's exact p.")
        {
            a, b, outFile,
        };
        command.SetAction(r =>
        {
            var (pathA, pathB) = (EvaluationJson(r.GetValue(a)!), EvaluationJson(r.GetValue(b)!));
            var result = ToyModelComparison.Compare(ReadJson(pathA), ReadJson(pathB), pathA, pathB);
            var md = ToyModelComparison.Markdown(result, pathA, pathB);
            output.Write(md);
            if (r.GetValue(outFile) is { } file) Core.IO.AtomicFile.WriteAllText(file, md);
            return 0;
        });
        return command;
    }

    private static string EvaluationJson(string path) => Directory.Exists(path) ? Path.Combine(path, "evaluation.json") : path;

    private static System.Text.Json.Nodes.JsonObject ReadJson(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such evaluation (give a toy-model evaluate folder or its evaluation.json)");
        try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)) as System.Text.Json.Nodes.JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: not JSON ({e.Message})"); }
    }

    private static Command Evaluate(TextWriter output, TextWriter error)
    {
        var model = new Option<string?>("--model") { Description = "A toy-world model folder (default: the embedded default)." };
        var outDir = new Option<string>("--out") { Description = "Images and evaluation.json / evaluation.md.", Required = true };
        var scenes = new Option<int>("--scenes") { Description = "Scenes of the split (two prompts each: the full caption and a partial one).", DefaultValueFactory = _ => 200 };
        var split = new Option<string>("--split")
        {
            Description = "held-out (default): scenes whose combinations no training scene shows; train: the first training scenes with the captions the UNet trained on (did it learn the words or the scenes?).",
            DefaultValueFactory = _ => "held-out",
        };
        var firstScene = new Option<long>("--first-scene")
        {
            Description = "Start at this scene of the split (default 0): disjoint ranges are separate sets, e.g. choose settings on scenes 200–399 (--first-scene 200) and report on 0–199. Scene j's captions get seeds 2j and 2j+1 in any range.",
            DefaultValueFactory = _ => 0,
        };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 25 };
        var guidance = GuidanceOptions.Create();
        var worldSeed = new Option<long>("--world-seed") { DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var classifier = new Option<int>("--classifier-scenes")
        {
            Description = "Held-out scenes for the diffusion classifier (does the UNet's denoising depend on the shape, colour, size, position word?); 0: off.",
            DefaultValueFactory = _ => 96,
        };
        var command = new Command("evaluate", "Generate held-out toy captions (or, with --split train, training scenes' captions) and score them attribute by attribute with the scene judge.")
        {
            model, outDir, scenes, split, firstScene, steps, worldSeed, device, classifier,
        };
        guidance.AddTo(command);
        command.SetAction(r =>
        {
            if (r.GetValue(classifier) < 0)
            {
                error.WriteLine($"error: --classifier-scenes takes 0 (off) or a number of scenes (got {r.GetValue(classifier)})");
                return 2;
            }
            if (r.GetValue(scenes) < 0)
            {
                error.WriteLine($"error: --scenes takes 0 (the diffusion classifier alone) or a number of scenes (got {r.GetValue(scenes)})");
                return 2;
            }
            SceneSplit sceneSplit;
            switch (r.GetValue(split))
            {
                case "held-out": sceneSplit = SceneSplit.HeldOut; break;
                case "train": sceneSplit = SceneSplit.Train; break;
                case var other:
                    error.WriteLine($"error: --split takes held-out or train (got {other})");
                    return 2;
            }
            long splitSize = ToyWorld.World.SceneCount(sceneSplit);
            int furthest = Math.Max(r.GetValue(scenes), r.GetValue(classifier));   // the images' scenes and the classifier's start at the same scene
            if (r.GetValue(firstScene) < 0 || r.GetValue(firstScene) > splitSize - furthest)
            {
                error.WriteLine($"error: --first-scene {r.GetValue(firstScene)} with --scenes {r.GetValue(scenes)} and --classifier-scenes {r.GetValue(classifier)} does not fit the split's {splitSize} scenes");
                return 2;
            }
            var sampling = new ToyModelEvaluation.EvaluationSampling(r.GetValue(steps), guidance.ScaleOf(r), guidance.RescaleOf(r), guidance.IntervalOf(r));
            sampling.Validate("toy-model evaluate");   // before the model loads and anything is written
            using var sd = ModelArguments.Load(r.GetValue(model), TorchSharp.torch.ScalarType.Float32, TorchOptions.ParseDevice(r.GetValue(device)!), error, "evaluating");
            var progress = new ProgressLine(error, "images", false);
            progress.Start(2 * r.GetValue(scenes));
            var classifierProgress = new ProgressLine(error, "classifier scenes", false);
            if (r.GetValue(scenes) == 0 && r.GetValue(classifier) > 0) classifierProgress.Start(r.GetValue(classifier));   // no images: the classifier runs at once
            var result = ToyModelEvaluation.Run(sd, r.GetValue(worldSeed), r.GetValue(scenes), r.GetValue(outDir)!, sampling,
                progress: (done, total) =>
                {
                    progress.Report(done, "judging");
                    if (done == total && r.GetValue(classifier) > 0) classifierProgress.Start(r.GetValue(classifier));   // the classifier runs next
                },
                classifierScenes: r.GetValue(classifier), classifierProgress: (done, _) => classifierProgress.Report(done, "diffusion classifier"), split: sceneSplit, firstScene: r.GetValue(firstScene));
            output.Write(ToyModelEvaluation.Markdown(sd.Name, result));
            output.WriteLine($"report: {Path.GetFullPath(Path.Combine(r.GetValue(outDir)!, "evaluation.md"))}");
            return 0;
        });
        return command;
    }
}
