using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.Tests.DreamBooth;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Judge;

namespace DiffusionPeft.Tests.ToyModel;

/// <summary>A miniature of the whole toy-model chain (world → VAE → text encoder → UNet): every loss falls, the result loads and resumes.</summary>
public sealed class ToyModelRecipeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-toymodel-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static ToyModelOptions Tiny => ToyModelOptions.Miniature with
    {
        VaeSteps = [24], VaeBatch = 4, ClipSteps = [24], ClipBatch = 16, PretrainScenes = 64, UnetImages = 24, UnetSteps = [24], UnetBatch = 4,
        CheckpointEvery = 8, EvalScenes = 8, VaeLr = 2e-3, ClipLr = 2e-3, UnetLr = 1e-3,
    };

    [Fact]
    public void EveryStageLossFallsAndTheModelFolderLoads()
    {
        var progress = new RecordingProgress();
        var reports = new ToyModelRecipe(_dir, Tiny, progress).Run();
        Assert.Equal(["vae", "clip", "unet"], reports.Select(r => r.Stage));
        foreach (var r in reports)
        {
            Assert.Equal(24, r.Steps);
            Assert.True(r.LastLoss < r.FirstLoss, $"{r.Stage}: loss {r.FirstLoss} → {r.LastLoss}");
        }
        Assert.True((double)reports[0].Measurements["heldout_psnr_db"]! > 5);
        Assert.InRange((double)reports[0].Measurements["scaling_factor"]!, 0.01, 100);
        Assert.InRange((double)reports[1].Measurements["heldout_shape_top1"]!, 0, 1);
        using var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder));
        Assert.Equal(16, model.Unet.Config.SampleSize);
        Assert.Equal(4, model.VaeScaleFactor);
        Assert.Equal(32, model.Tokenizer.MaxLength);
        Assert.Equal(ToyModelOptions.DefaultGuidanceScale, model.DefaultGuidanceScale);   // the recipe's default guidance, in the folder's generation_config.json

        // The judge's evaluation runs on it, with the VAE's ceiling judged on the same captions.
        var classified = new List<(int, int)>();
        var eval = ToyModelEvaluation.Run(model, 0, 3, Path.Combine(_dir, "eval"), new ToyModelEvaluation.EvaluationSampling(Steps: 2), classifierScenes: 2, classifierProgress: (d, t) => classified.Add((d, t)));
        Assert.Equal((2, 2), classified.Last());
        Assert.Equal(6, eval.Images);
        Assert.Equal([(JudgeAttribute.Shape, 2, 8), (JudgeAttribute.Colour, 2, 10), (JudgeAttribute.Size, 2, 3), (JudgeAttribute.Position, 2, 9)],
            eval.WordChoices.Select(c => (c.Attribute, c.Count, c.Candidates)));
        foreach (var a in Enum.GetValues<DiffusionPeft.ToyWorld.Judge.JudgeAttribute>())
            Assert.Equal(eval.All.Count(a), eval.VaeRoundTrip.Count(a));
        Assert.Equal(6, eval.VaeRoundTrip.Count(DiffusionPeft.ToyWorld.Judge.JudgeAttribute.Shape));
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "eval", "evaluation.json")))!;
        Assert.NotNull(json["vae_round_trip"]?["Shape"]?["accuracy"]);
        // Each image's row has its own and its scene's round trip's results, which sum to the totals.
        var rows = json["images"]!.AsArray();
        Assert.Equal(6, rows.Count);
        Assert.Equal(eval.VaeRoundTrip.Correct(JudgeAttribute.Shape), rows.Count(r => (bool?)r!["vae_round_trip_results"]!["Shape"] == true));
        Assert.Equal(eval.All.Correct(JudgeAttribute.Shape), rows.Count(r => (bool?)r!["results"]!["Shape"] == true));
        // ... and what the judge read in the main object's place, whose shapes make the confusion table.
        var shapes = Enum.GetValues<ToyShape>();
        Assert.Equal(6, shapes.Sum(eval.Shapes.Asked));
        Assert.Equal(eval.All.Correct(JudgeAttribute.Shape), shapes.Sum(a => eval.Shapes.Count(a, a)));
        foreach (var r in shapes.Select(s => (ToyShape?)s).Append(null))
            Assert.Equal(eval.Shapes.Read(r), rows.Count(row => (string?)row!["main_read"]?["shape"] == (r is { } v ? ToyGrammar.Word(v) : null)));
        Assert.Equal(eval.Shapes.Read(ToyShape.Circle), shapes.Sum(a => (int)json["shape_confusion"]![ToyGrammar.Word(a)]!["circle"]!));
        Assert.Contains("what the judge read", File.ReadAllText(Path.Combine(_dir, "eval", "evaluation.md")));
        // ... and the scores by the size word of each caption, which add up to the whole.
        Assert.Equal(6, eval.BySize.Values.Sum(a => a.Scores));
        Assert.Equal(eval.All.Correct(JudgeAttribute.Shape), eval.BySize.Values.Sum(a => a.Correct(JudgeAttribute.Shape)));
        foreach (var g in ToyModelEvaluation.SizeGroups)
            Assert.Equal(eval.BySize[g].Scores, rows.Count(r => (CaptionParser.Parse((string)r!["prompt"]!).Main.Size is { } z ? ToyGrammar.Word(z) : "not said") == g));
        Assert.Equal(eval.BySize["large"].Scores, (int)json["by_size"]!["large"]!["scores"]!);
        Assert.Contains("By the size the caption names", File.ReadAllText(Path.Combine(_dir, "eval", "evaluation.md")));
        Assert.Equal(0.125, (double)json["diffusion_classifier"]!["Shape"]!["chance"]!, 12);
        var byTimestep = json["diffusion_classifier"]!["Colour"]!["accuracy_by_timestep"]!.AsObject();
        Assert.Equal(DiffusionClassifier.Timesteps.Select(t => t.ToString()), byTimestep.Select(p => p.Key));
        Assert.All(byTimestep, p => Assert.InRange((double)p.Value!, 0, 1));
        Assert.Contains("Diffusion classifier", File.ReadAllText(Path.Combine(_dir, "eval", "evaluation.md")));
        Assert.Contains("through the VAE (ceiling)", File.ReadAllText(Path.Combine(_dir, "eval", "evaluation.md")));

        // From a later scene: the same prompts and seeds as the longer run's images there (disjoint ranges are separate sets;
        // overlapping ones pair in toy-model compare), and the range in the report.
        var later = ToyModelEvaluation.Run(model, 0, 1, Path.Combine(_dir, "eval-later"), new ToyModelEvaluation.EvaluationSampling(Steps: 2), firstScene: 2);
        Assert.Equal((2, 2L), (later.Images, later.FirstScene));
        var laterJson = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "eval-later", "evaluation.json")))!;
        Assert.Equal(2, (long)laterJson["first_scene"]!);
        Assert.Equal(rows.Skip(4).Select(r => ((string)r!["prompt"]!, (long)r["seed"]!)),
                     laterJson["images"]!.AsArray().Select(r => ((string)r!["prompt"]!, (long)r["seed"]!)));
        Assert.Contains("(scenes 2..2 of the split)", File.ReadAllText(Path.Combine(_dir, "eval-later", "evaluation.md")));
        Assert.Equal(model.DefaultGuidanceScale, (double)json["guidance"]!);

        // On training scenes: their full captions and the captions the UNet trained on, the classifier on the same scenes.
        var train = ToyModelEvaluation.Run(model, 0, 2, Path.Combine(_dir, "eval-train"), new ToyModelEvaluation.EvaluationSampling(Steps: 2),
                                           classifierScenes: 1, split: DiffusionPeft.ToyWorld.Scenes.SceneSplit.Train);
        Assert.Equal((4, DiffusionPeft.ToyWorld.Scenes.SceneSplit.Train), (train.Images, train.Split));
        Assert.All(train.WordChoices, c => Assert.Equal(1, c.Count));
        var trainJson = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "eval-train", "evaluation.json")))!;
        Assert.Equal(("train", 2), ((string)trainJson["split"]!, (int)trainJson["training_scenes"]!));
        Assert.Equal("held_out", (string)json["split"]!);
        Assert.Equal(new DiffusionPeft.ToyWorld.World(0).TrainingPrompts(2).Select(p => p.Text), trainJson["images"]!.AsArray().Select(r => (string)r!["prompt"]!));
        var trainMd = File.ReadAllText(Path.Combine(_dir, "eval-train", "evaluation.md"));
        Assert.Contains("judge accuracy on training scenes' captions", trainMd);
        Assert.Contains("| the caption it trained on |", trainMd);
        // No scenes: the diffusion classifier alone, and no empty tables of images.
        var classifierOnly = ToyModelEvaluation.Run(model, 0, 0, Path.Combine(_dir, "eval-classifier"), new ToyModelEvaluation.EvaluationSampling(Steps: 2), classifierScenes: 1);
        Assert.Equal((0, 4), (classifierOnly.Images, classifierOnly.WordChoices.Count));
        var classifierMd = File.ReadAllText(Path.Combine(_dir, "eval-classifier", "evaluation.md"));
        Assert.Contains("Diffusion classifier", classifierMd);
        Assert.DoesNotContain("By the size", classifierMd);
        Assert.DoesNotContain("| attribute |", classifierMd);

        // A rerun finds every stage done and changes nothing.
        var again = new ToyModelRecipe(_dir, Tiny, progress).Run();
        Assert.Equal(reports.Select(r => r.LastLoss), again.Select(r => r.LastLoss));
        // Another default guidance on the finished run: that file rewritten, nothing trained.
        var unetWeights = Path.Combine(_dir, ToyModelRecipe.ModelFolder, "unet", "diffusion_pytorch_model.safetensors");
        var stamp = File.GetLastWriteTimeUtc(unetWeights);
        var regraded = new ToyModelRecipe(_dir, Tiny with { GuidanceScale = 5.5 }, progress).Run();
        Assert.Equal(reports.Select(r => r.LastLoss), regraded.Select(r => r.LastLoss));
        Assert.Equal(new DiffusionPeft.Diffusion.Pipelines.GenerationConfig(5.5), DiffusionPeft.Diffusion.Pipelines.GenerationConfig.Read(Path.Combine(_dir, ToyModelRecipe.ModelFolder)));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(unetWeights));
        new ToyModelRecipe(_dir, Tiny, progress).Run();   // a rerun without one keeps the run's scale
        Assert.Equal(new DiffusionPeft.Diffusion.Pipelines.GenerationConfig(5.5), DiffusionPeft.Diffusion.Pipelines.GenerationConfig.Read(Path.Combine(_dir, ToyModelRecipe.ModelFolder)));

        // Its tokenizer, VAE and text encoder taken as another run's finished stages: only the UNet's data and stage run.
        var modelDir = Path.Combine(_dir, ToyModelRecipe.ModelFolder);
        var adoptedDir = Path.Combine(_dir, "adopted");
        var adopting = Tiny with { ComponentsFrom = modelDir, UnetSteps = [4] };
        var adopted = new ToyModelRecipe(adoptedDir, adopting).Run();
        Assert.Equal([int.MaxValue, int.MaxValue, 4], adopted.Select(r => r.Steps));
        Assert.Equal(Path.GetFullPath(modelDir), (string)adopted[0].Measurements["source"]!);
        foreach (var part in new[] { "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/vocab.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(modelDir, part)), File.ReadAllBytes(Path.Combine(adoptedDir, ToyModelRecipe.ModelFolder, part)));
        Assert.Equal(adopted.Select(r => r.LastLoss), new ToyModelRecipe(adoptedDir, adopting).Run().Select(r => r.LastLoss));   // the same source again: done
        // A run that trained its own (or took another model's) is refused, and nothing in it changes.
        var vaeBefore = File.ReadAllBytes(Path.Combine(_dir, "vae", "done.json"));
        Assert.Contains("already holds a vae stage (trained here)",
            Assert.Throws<ArgumentException>(() => new ToyModelRecipe(_dir, Tiny with { ComponentsFrom = Path.Combine(adoptedDir, ToyModelRecipe.ModelFolder) }).Run()).Message);
        Assert.Equal(vaeBefore, File.ReadAllBytes(Path.Combine(_dir, "vae", "done.json")));
        // The same files from another path (a rebuilt dpeft's embedded folder) are the same components; other files are not.
        var copy = Path.Combine(_dir, "copy");
        foreach (var file in Directory.EnumerateFiles(modelDir, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(copy, Path.GetRelativePath(modelDir, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        Assert.Equal(4, new ToyModelRecipe(adoptedDir, adopting with { ComponentsFrom = copy }).Run()[2].Steps);
        var vaeWeights = Path.Combine(copy, "vae", "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(vaeWeights);
        bytes[^1] ^= 0x40;   // one weight's last byte: a different VAE
        File.WriteAllBytes(vaeWeights, bytes);
        Assert.Contains("taken from", Assert.Throws<ArgumentException>(() => new ToyModelRecipe(adoptedDir, adopting with { ComponentsFrom = copy }).Run()).Message);
        Assert.Contains("not a toy model folder to take components from (no tokenizer/vocab.json)",
            Assert.Throws<FileNotFoundException>(() => new ToyModelRecipe(Path.Combine(_dir, "x"), Tiny with { ComponentsFrom = Path.Combine(_dir, "vae") }).Run()).Message);
        // The embedded model's VAE makes 32×32 latents: a 16×16 recipe cannot take it.
        Assert.Contains("VAE has 32×32 latents, not 16×16: take its components with --latent-size 32",
            Assert.Throws<ArgumentException>(() => new ToyModelRecipe(Path.Combine(_dir, "y"), Tiny with { ComponentsFrom = EmbeddedDefaultModel.Keyword }).Run()).Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "y", "vae")));
    }

    /// <summary>32×32 latents: the VAE downsamples 2×, the UNet gains a convolution level on top; the chain trains and loads; the grid is fixed for a run.</summary>
    [Fact]
    public void ThirtyTwoLatentsTrainLoadAndAreFixedForTheRun()
    {
        var reports = new ToyModelRecipe(_dir, Tiny with { LatentSize = 32, VaeSteps = [8], ClipSteps = [8], UnetSteps = [8] }).Run();
        Assert.All(reports, r => Assert.True(double.IsFinite(r.LastLoss) && r.Steps == 8, $"{r.Stage}: {r.Steps} steps, loss {r.LastLoss}"));
        Assert.True((double)reports[0].Measurements["heldout_psnr_db"]! > 5);
        using (var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder)))
        {
            Assert.Equal(32, model.Unet.Config.SampleSize);
            Assert.Equal(2, model.VaeScaleFactor);
            Assert.Equal(["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"], model.Unet.Config.DownBlockTypes);
            Assert.False(model.Vae.Config.MidBlockAddAttention);
            using var scheduler = model.CreateScheduler("default");
            using var generated = new DiffusionPeft.Diffusion.Pipelines.StableDiffusionPipeline(model, scheduler).Run(new()
            {
                Prompts = ["a red circle"], Seeds = [0], Width = 64, Height = 64, Steps = 2, GuidanceScale = 7.5,
            });
            Assert.Equal([1, 64, 64, 3], generated.Images.shape);
        }
        var ex = Assert.Throws<ArgumentException>(() => new ToyModelRecipe(_dir, Tiny with { VaeSteps = [8], ClipSteps = [8], UnetSteps = [8] }).Run());
        Assert.Contains("32×32 latents, not 16×16", ex.Message);
        Assert.Contains(Path.Combine(_dir, "vae"), ex.Message);
    }

    [Fact]
    public void AVaeTrainedOnSetsTheOldBaseAndUnetAsideAndTheUnetStartsAgain()
    {
        var first = new ToyModelRecipe(_dir, Tiny).Run();
        var progress = new RecordingProgress();
        var longer = Tiny with { VaeSteps = [32] };
        var second = new ToyModelRecipe(_dir, longer, progress).Run();
        Assert.Equal(32, second[0].Steps);                                   // the VAE trained on from its checkpoint
        Assert.Equal(first[1].LastLoss, second[1].LastLoss);                 // the text encoder was left alone
        Assert.True(Directory.Exists(Path.Combine(_dir, "unet.stale-1")));   // nothing lost
        Assert.True(File.Exists(Path.Combine(_dir, "base.stale-1", "model_index.json")));
        Assert.Contains(progress.Warnings, w => w.Contains("unet.stale-1"));
        Assert.Equal(24, second[2].Steps);                                   // a new UNet on the new VAE
        using var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder));
        var newVae = File.ReadAllBytes(Path.Combine(_dir, ToyModelRecipe.ModelFolder, "vae", "diffusion_pytorch_model.safetensors"));
        var oldVae = File.ReadAllBytes(Path.Combine(_dir, "model.stale-1", "vae", "diffusion_pytorch_model.safetensors"));
        Assert.NotEqual(oldVae, newVae);
    }

    [Fact]
    public void ANewUnetWidthSetsTheOldBaseAndUnetAsideAndKeepsTheVaeAndTextEncoder()
    {
        var quick = Tiny with { VaeSteps = [4], ClipSteps = [1], UnetSteps = [2], UnetImages = 4 };
        var first = new ToyModelRecipe(_dir, quick with { GuidanceScale = 6 }).Run();
        var progress = new RecordingProgress();
        var wider = new ToyModelRecipe(_dir, quick with { UnetWidth = 32 }, progress).Run();
        Assert.Equal(first[0].LastLoss, wider[0].LastLoss);                  // VAE and text encoder untouched
        Assert.Equal(first[1].LastLoss, wider[1].LastLoss);
        Assert.Contains(progress.Warnings, w => w.Contains("width changed (16 → 32)") && w.Contains("unet.stale-1"));
        using var old = StableDiffusionLoader.Load(Path.Combine(_dir, "model.stale-1"));
        using var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder));
        Assert.Equal(16, old.Unet.Config.BlockOutChannels[0]);
        Assert.Equal([32, 64, 64], model.Unet.Config.BlockOutChannels);
        Assert.Equal(6, model.DefaultGuidanceScale);   // the run keeps its guidance though its base moved aside
    }

    [Fact]
    public void TopLevelAttentionOn32LatentsIsInTheBaseAndChangingItSetsTheUnetAside()
    {
        var quick = Tiny with { LatentSize = 32, VaeSteps = [4], ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetTopAttention = TopLevelAttention.Full };
        var reports = new ToyModelRecipe(_dir, quick).Run();
        Assert.True(double.IsFinite(reports[2].LastLoss));
        using (var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder)))
        {
            Assert.Equal(["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"], model.Unet.Config.DownBlockTypes);
            Assert.False(model.Unet.Config.OnlyCrossAttentionAt(0));
        }
        var progress = new RecordingProgress();
        reports = new ToyModelRecipe(_dir, quick with { UnetTopAttention = TopLevelAttention.CrossOnly }, progress).Run();
        Assert.True(double.IsFinite(reports[2].LastLoss));
        Assert.Contains(progress.Warnings, w => w.Contains("top-level attention changed (full → cross_only)") && w.Contains("unet.stale-1"));
        using (var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder)))
        {
            Assert.Equal(TopLevelAttention.CrossOnly, TopLevelAttentions.Of(model.Unet.Config));
            Assert.Equal([true, false, false, false], model.Unet.Config.OnlyCrossAttention);
        }
        progress = new RecordingProgress();
        new ToyModelRecipe(_dir, quick with { UnetTopAttention = TopLevelAttention.None }, progress).Run();
        Assert.Contains(progress.Warnings, w => w.Contains("top-level attention changed (cross_only → none)") && w.Contains("unet.stale-2"));
        using (var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder)))
            Assert.Equal("DownBlock2D", model.Unet.Config.DownBlockTypes[0]);

        var sixteen = Assert.Throws<ArgumentException>(() => new ToyModelRecipe(Path.Combine(_dir, "16"), Tiny with { UnetTopAttention = TopLevelAttention.CrossOnly }).Run());
        Assert.Contains("for 32×32 latents", sixteen.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "16")));
    }

    [Fact]
    public void TheTextEmbeddingIsInTheBaseAndChangingItSetsTheUnetAside()
    {
        var quick = Tiny with { VaeSteps = [4], ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetTextEmbedding = true, UnetWhitenConditioning = false };
        var reports = new ToyModelRecipe(_dir, quick).Run();
        Assert.True(double.IsFinite(reports[2].LastLoss));
        using (var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder)))
        {
            Assert.True(model.Unet.Config.HasTextTimeEmbedding);
            Assert.Contains(model.Unet.state_dict().Keys, k => k == "add_embedding.pool.positional_embedding");
        }
        var progress = new RecordingProgress();
        new ToyModelRecipe(_dir, quick with { UnetTextEmbedding = false }, progress).Run();
        Assert.Contains(progress.Warnings, w => w.Contains("text embedding changed (on → off)") && w.Contains("unet.stale-1"));
        using (var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder)))
            Assert.False(model.Unet.Config.HasTextTimeEmbedding);
    }

    [Fact]
    public void TheUnetStageTrainsInMixedPrecisionWhenAskedAndWritesAModelThatLoads()
    {
        var quick = Tiny with { VaeSteps = [4], ClipSteps = [1], UnetSteps = [3], UnetImages = 4, UnetDType = "bf16" };
        var reports = new ToyModelRecipe(_dir, quick).Run();
        Assert.True(double.IsFinite(reports[2].LastLoss));
        var recorded = TrainConfigYaml.Load(Path.Combine(_dir, "unet", TrainConfigYaml.ResolvedFileName), validate: false);
        Assert.Equal("bf16", recorded.DType);
        using var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder));
        Assert.All(model.Unet.parameters(), p => Assert.True(p.isfinite().all().item<bool>()));
    }

    /// <summary>auto: a new UNet run takes what --dtype auto picks on this machine; a run started in fp32 resumes in fp32.</summary>
    [Fact]
    public void AnAutoUnetDTypeIsThisMachinesChoiceForANewRunAndTheRunsOwnOnResume()
    {
        var quick = Tiny with { VaeSteps = [4], ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetDType = "fp32" };
        new ToyModelRecipe(_dir, quick).Run();
        new ToyModelRecipe(_dir, quick with { UnetSteps = [3], UnetDType = "auto" }).Run();   // trains on: would be refused in another dtype
        Assert.Equal("fp32", TrainConfigYaml.Load(Path.Combine(_dir, "unet", TrainConfigYaml.ResolvedFileName), validate: false).DType);

        var fresh = Path.Combine(_dir, "fresh");
        new ToyModelRecipe(fresh, quick with { UnetDType = "auto" }).Run();
        var expected = DiffusionPeft.Diffusion.TorchOptions.Name(DiffusionPeft.Diffusion.TorchOptions.ResolveDType("auto", TorchSharp.torch.CPU));
        Assert.Equal(expected, TrainConfigYaml.Load(Path.Combine(fresh, "unet", TrainConfigYaml.ResolvedFileName), validate: false).DType);
    }

    [Fact]
    public void StageLengthsAsAListAreTheSameAsTrainingOnInASecondRun()
    {
        var quick = Tiny with { VaeSteps = [16], ClipSteps = [1], UnetSteps = [1], UnetImages = 4 };
        var (twoRuns, oneRun, reports) = TwoRunsAndAList(quick, quick with { VaeSteps = [24] }, quick with { VaeSteps = [16, 24] });
        Assert.Equal(24, reports[0].Steps);
        Assert.False(Directory.Exists(Path.Combine(oneRun, "unet.stale-1")));   // the UNet trained once, on the last VAE
        foreach (var file in new[] { Path.Combine("vae", "diffusion_pytorch_model.safetensors"), Path.Combine("unet", "diffusion_pytorch_model.safetensors") })
            TensorAssert.SameSafetensors(Path.Combine(twoRuns, ToyModelRecipe.ModelFolder, file), Path.Combine(oneRun, ToyModelRecipe.ModelFolder, file));
        var error = Assert.Throws<ArgumentException>(() => new ToyModelRecipe(Path.Combine(_dir, "bad"), quick with { VaeSteps = [24, 16] }).Run());
        Assert.Contains("VAE stage", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")));
    }

    [Fact]
    public void UnetLengthsAsAListAreTheSameAsTrainingOnInASecondRunWithTheRunsOwnWarmUp()
    {
        // The warm-up is min(200, steps / 10): 1 for 10 steps, 3 for 30. A run keeps the one it started with, which is
        // part of its trajectory, so training on to 30 is neither refused nor another schedule.
        var quick = Tiny with { VaeSteps = [4], ClipSteps = [1], UnetSteps = [10], UnetImages = 4 };
        var (twoRuns, oneRun, reports) = TwoRunsAndAList(quick, quick with { UnetSteps = [30] }, quick with { UnetSteps = [10, 30] });
        Assert.Equal(30, reports[2].Steps);
        Assert.Contains("lr-warmup-steps: 1", File.ReadAllLines(Path.Combine(oneRun, "unet", "config.yaml")));
        var unet = Path.Combine(ToyModelRecipe.ModelFolder, "unet", "diffusion_pytorch_model.safetensors");
        TensorAssert.SameSafetensors(Path.Combine(twoRuns, unet), Path.Combine(oneRun, unet));
    }

    /// <summary><paramref name="first"/> then <paramref name="then"/> in one folder, <paramref name="asList"/> in another: both folders and the list's reports.</summary>
    private (string TwoRuns, string OneRun, IReadOnlyList<StageReport> Reports) TwoRunsAndAList(ToyModelOptions first, ToyModelOptions then, ToyModelOptions asList)
    {
        var twoRuns = Path.Combine(_dir, "two-runs");
        new ToyModelRecipe(twoRuns, first).Run();
        new ToyModelRecipe(twoRuns, then).Run();
        var oneRun = Path.Combine(_dir, "one-run");
        return (twoRuns, oneRun, new ToyModelRecipe(oneRun, asList).Run());
    }

    [Fact]
    public void APartialTokenizerFolderIsWrittenAgainWhole()
    {
        var tokenizer = Path.Combine(_dir, "tokenizer");
        Directory.CreateDirectory(tokenizer);
        File.WriteAllText(Path.Combine(tokenizer, "vocab.json"), "{}");   // an older, file-by-file write killed after its first file
        new ToyModelRecipe(_dir, Tiny with { VaeSteps = [1], ClipSteps = [1], UnetSteps = [1], UnetImages = 4 }).Run();
        Assert.True(DiffusionPeft.ToyWorld.Vocabulary.ToyVocabulary.IsComplete(tokenizer));
        Assert.NotEqual("{}", File.ReadAllText(Path.Combine(tokenizer, "vocab.json")));
        Assert.False(Directory.Exists(tokenizer + ".tmp"));
    }

    [Fact]
    public void AFinishedUnetTrainedOnReplacesTheModelFolder()
    {
        var quick = Tiny with { ClipSteps = [1], UnetSteps = [2], UnetImages = 4 };
        new ToyModelRecipe(_dir, quick).Run();
        string Unet(string folder) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(
            File.ReadAllBytes(Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors"))));
        var first = Unet(Path.Combine(_dir, ToyModelRecipe.ModelFolder));
        var reports = new ToyModelRecipe(_dir, quick with { UnetSteps = [4] }).Run();
        Assert.Equal(4, reports[2].Steps);
        var model = Unet(Path.Combine(_dir, ToyModelRecipe.ModelFolder));
        Assert.NotEqual(first, model);
        Assert.Equal(Unet(Path.Combine(_dir, "unet", ToyModelRecipe.ModelFolder)), model);   // the run's final weights, not the old model
        Assert.Contains("snr-gamma: null", File.ReadAllText(Path.Combine(_dir, "unet", "config.yaml")));   // the plain v loss by default
    }

    [Fact]
    public void PlainScenesJoinTheUnetDataAndAnotherCountRewritesItAndSetsTheUnetAside()
    {
        var quick = Tiny with { VaeSteps = [4], ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetPlainScenes = 0 };
        var data = Path.Combine(_dir, "data", "train");
        new ToyModelRecipe(_dir, quick).Run();
        Assert.Empty(Directory.GetFiles(data, "plain-*"));
        File.WriteAllText(Path.Combine(data, ToyModelRecipe.DoneFile), "{}");   // as runs made before the counts were recorded
        var progress = new RecordingProgress();
        new ToyModelRecipe(_dir, quick, progress).Run();
        Assert.Empty(progress.Warnings);                                          // "{}" is the default data: nothing rewritten

        var reports = new ToyModelRecipe(_dir, quick with { UnetPlainScenes = 3 }, progress).Run();
        Assert.Equal(3, Directory.GetFiles(data, "plain-*.png").Length);
        Assert.Equal(4, Directory.GetFiles(data, "0*.png").Length);
        Assert.Contains(progress.Warnings, w => w.Contains("data changed (4 + 0 plain scenes (large) → 4 + 3 (large))") && w.Contains("unet.stale-1"));
        Assert.Equal(3, (int)reports[2].Measurements["plain_scenes"]!);
        var done = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(data, ToyModelRecipe.DoneFile)))!;
        Assert.Equal((4, 3, "large"), ((int)done["images"]!, (int)done["plain_scenes"]!, (string?)done["plain_sizes"]));
        Assert.Contains(progress.Infos, i => i.StartsWith("7 training images in "));   // the UNet trained on both kinds
    }

    [Fact]
    public void OtherPlainSizesRewriteThePlainScenesAndTheSameSetInAnotherOrderDoesNot()
    {
        var quick = Tiny with { VaeSteps = [4], ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetPlainScenes = 12 };
        var data = Path.Combine(_dir, "data", "train");
        new ToyModelRecipe(_dir, quick).Run();
        File.WriteAllText(Path.Combine(data, ToyModelRecipe.DoneFile), """{"images":4,"plain_scenes":12}""");   // as runs made before the sizes were recorded
        var progress = new RecordingProgress();
        new ToyModelRecipe(_dir, quick, progress).Run();
        Assert.Empty(progress.Warnings);                                         // no sizes recorded means large, the default

        var smaller = quick with { UnetPlainSizes = [ToySize.Medium, ToySize.Small] };
        var reports = new ToyModelRecipe(_dir, smaller, progress).Run();
        Assert.Contains(progress.Warnings, w => w.Contains("data changed (4 + 12 plain scenes (large) → 4 + 12 (small,medium))") && w.Contains("unet.stale-1"));
        Assert.Equal("small,medium", (string?)reports[2].Measurements["plain_sizes"]);
        var captions = Directory.GetFiles(data, "plain-*.txt").Select(File.ReadAllText).ToList();
        Assert.Equal(12, captions.Count);
        Assert.All(captions, c => Assert.DoesNotContain("large", c));
        Assert.Contains(captions, c => c.StartsWith("a small "));
        Assert.Contains(captions, c => c.StartsWith("a medium "));

        int warnings = progress.Warnings.Count;
        new ToyModelRecipe(_dir, quick with { UnetPlainSizes = [ToySize.Small, ToySize.Medium, ToySize.Small] }, progress).Run();
        Assert.Equal(warnings, progress.Warnings.Count);                         // the same set: the data and the UNet stand

        var before = Directory.GetFiles(data).Length;
        var none = Assert.Throws<ArgumentException>(() => new ToyModelRecipe(_dir, quick with { UnetPlainSizes = [] }).Run());
        Assert.Contains("12 plain scenes need at least one size", none.Message);
        Assert.Equal(before, Directory.GetFiles(data).Length);                   // refused before anything was touched
    }

    [Fact]
    public void WithAWeightAverageTheModelIsTheAverage()
    {
        var reports = new ToyModelRecipe(_dir, Tiny with { ClipSteps = [1], UnetSteps = [3], UnetImages = 4, UnetEmaDecay = 0.5, UnetWhitenConditioning = false }).Run();   // unwhitened: the folder holds the average as it is
        Assert.Equal(3, reports[2].Steps);
        Assert.Contains("ema-decay: 0.5", File.ReadAllText(Path.Combine(_dir, "unet", "config.yaml")));
        using var average = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(Path.Combine(_dir, "unet", "checkpoints", "step-000003", EmaWeights.FileName));
        using var trained = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(Path.Combine(_dir, "unet", "checkpoints", "step-000003", Trainer.ParametersFile));
        using var model = StableDiffusionLoader.Load(Path.Combine(_dir, "model"));
        var unet = model.Unet.state_dict();
        int differ = 0;
        foreach (var name in average.Names)
        {
            using var a = average.Read(name, TorchSharp.torch.ScalarType.BFloat16);
            using var t = trained.Read(name, TorchSharp.torch.ScalarType.BFloat16);
            Assert.True(unet[name["unet.".Length..]].to_type(TorchSharp.torch.ScalarType.BFloat16).eq(a).all().item<bool>(), $"{name} as written");
            if (!a.eq(t).all().item<bool>()) differ++;
        }
        Assert.True(differ > average.Names.Count() / 2, $"only {differ} averaged tensors differ from the trained ones");
    }

    [Fact]
    public void AMaskedLossWritesTheObjectMasksAndTrainsOnThemAndDroppingItRewritesTheData()
    {
        var quick = Tiny with { VaeSteps = [4], ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetPlainScenes = 2, UnetUnmaskedWeight = 0.2 };
        var reports = new ToyModelRecipe(_dir, quick).Run();
        Assert.Equal(2, reports[2].Steps);
        var data = Path.Combine(_dir, "data", "train");
        Assert.Equal(6, Directory.GetFiles(data, "*" + DiffusionPeft.ToyWorld.Files.ToyWorldFiles.MaskSuffix).Length);
        var config = File.ReadAllText(Path.Combine(_dir, "unet", "config.yaml"));
        Assert.Contains("masked-loss: true", config);
        Assert.Contains("unmasked-weight: 0.2", config);

        new ToyModelRecipe(_dir, quick with { UnetUnmaskedWeight = null }).Run();
        Assert.Empty(Directory.GetFiles(data, "*" + DiffusionPeft.ToyWorld.Files.ToyWorldFiles.MaskSuffix));
        Assert.True(Directory.Exists(Path.Combine(_dir, "unet.stale-1")), "the masked UNet was set aside");
        Assert.Contains("masked-loss: false", File.ReadAllText(Path.Combine(_dir, "unet", "config.yaml")));
    }

    [Fact]
    public void TheUnetCanTrainOnWhitenedTextStates()
    {
        var reports = new ToyModelRecipe(_dir, Tiny with { ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetWhitenConditioning = true, UnetWhitenStrength = 0.5 }).Run();
        Assert.Equal(2, reports[2].Steps);
        Assert.Contains("whiten-conditioning: true", File.ReadAllText(Path.Combine(_dir, "unet", "config.yaml")));
        Assert.Contains("whiten-strength: 0.5", File.ReadAllText(Path.Combine(_dir, "unet", "config.yaml")));
        using (var whiteningFile = SafetensorsFile.Open(Path.Combine(_dir, "unet", DiffusionPeft.DreamBooth.StableDiffusion.ConditioningWhitening.FileName)))
            Assert.Equal("0.5", whiteningFile.Metadata["strength"]);
        // The folder is bf16 but the folded keys and values are kept in fp32 (their bf16 rounding costs ~8× a plain weight's).
        var (entries, _) = SafetensorsFile.ReadHeader(Path.Combine(_dir, ToyModelRecipe.ModelFolder, "unet", "diffusion_pytorch_model.safetensors"));
        var fp32 = entries.Where(e => e.Value.DType == SafetensorsDType.F32).Select(e => e.Key).Order().ToList();
        Assert.NotEmpty(fp32);
        Assert.All(fp32, k => Assert.Matches(@"\.attn[12]\.to_[kv]\.weight$", k));
        Assert.Contains(entries, e => e.Key.EndsWith(".attn2.to_q.weight") && e.Value.DType == SafetensorsDType.BF16);
        using (var model = StableDiffusionLoader.Load(Path.Combine(_dir, ToyModelRecipe.ModelFolder)))   // the mixed folder loads, every weight as written
        using (var file = SafetensorsFile.Open(Path.Combine(_dir, ToyModelRecipe.ModelFolder, "unet", "diffusion_pytorch_model.safetensors")))
        using (var stored = file.Read(fp32[0]))
            Assert.True(model.Unet.state_dict()[fp32[0]].eq(stored).all().item<bool>());

        var both = Assert.Throws<ArgumentException>(() => new ToyModelRecipe(Path.Combine(_dir, "both"), Tiny with { UnetWhitenConditioning = true, UnetTextEmbedding = true }).Run());
        Assert.Contains("use one of them", both.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "both")), "refused before anything is written");
    }

    [Fact]
    public void TheUnetCanTrainWithMinSnrWeighting()
    {
        var reports = new ToyModelRecipe(_dir, Tiny with { ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetSnrGamma = 5 }).Run();
        Assert.Equal(2, reports[2].Steps);
        Assert.Contains("snr-gamma: 5", File.ReadAllText(Path.Combine(_dir, "unet", "config.yaml")));
    }

    [Fact]
    public void TheUnetStageTrainsAtItsOwnLearningRateAndAnotherRateOrBatchDoesNotResumeIt()
    {
        var options = Tiny with { ClipSteps = [1], UnetSteps = [2], UnetImages = 4, UnetLr = 1.5e-3 };
        Assert.Equal(2, new ToyModelRecipe(_dir, options).Run()[2].Steps);
        var log = File.ReadAllLines(Path.Combine(_dir, "unet", "log.jsonl"));
        Assert.Contains("lr: 0.0015", File.ReadAllLines(Path.Combine(_dir, "unet", "config.yaml")));
        // Training on at another rate would silently mix two runs: the trainer refuses it, naming the key; nothing is lost.
        var error = Assert.Throws<DiffusionPeft.DreamBooth.Checkpoints.InvalidCheckpointException>(
            () => new ToyModelRecipe(_dir, options with { UnetSteps = [4], UnetLr = 5e-4 }).Run());
        Assert.Contains("different training settings (lr)", error.Message);
        // So would another batch (--unet-batch).
        error = Assert.Throws<DiffusionPeft.DreamBooth.Checkpoints.InvalidCheckpointException>(
            () => new ToyModelRecipe(_dir, options with { UnetSteps = [4], UnetBatch = options.UnetBatch + 1 }).Run());
        Assert.Contains("different training settings (batch)", error.Message);
        // A finished stage asked for no more steps is not kept under another rate without a word either.
        error = Assert.Throws<DiffusionPeft.DreamBooth.Checkpoints.InvalidCheckpointException>(
            () => new ToyModelRecipe(_dir, options with { UnetLr = 5e-4 }).Run());
        Assert.Contains("different training settings (lr)", error.Message);
        Assert.Equal(log, File.ReadAllLines(Path.Combine(_dir, "unet", "log.jsonl")));
        Assert.True(File.Exists(Path.Combine(_dir, "unet", ToyModelRecipe.DoneFile)));                        // still finished
        Assert.Contains("lr: 0.0015", File.ReadAllLines(Path.Combine(_dir, "unet", "config.yaml")));   // still describes its checkpoints
        Assert.Contains("give its settings (--unet-lr, as in its config.yaml)", error.Message);
        // A guidance given with the refused rate is not written either: the next rerun keeps the run's own.
        Assert.Throws<DiffusionPeft.DreamBooth.Checkpoints.InvalidCheckpointException>(() => new ToyModelRecipe(_dir, options with { UnetLr = 5e-4, GuidanceScale = 6 }).Run());
        Assert.Equal(2, new ToyModelRecipe(_dir, options).Run()[2].Steps);                               // and reruns as it was
        Assert.Equal(ToyModelOptions.DefaultGuidanceScale,
            DiffusionPeft.Diffusion.Pipelines.GenerationConfig.Read(Path.Combine(_dir, ToyModelRecipe.ModelFolder))!.GuidanceScale);
    }

    [Theory]
    [InlineData("fp32")]
    [InlineData("bf16")]
    public void AStageKilledMidwayResumesToTheSameWeights(string vaeDType)
    {
        var options = Tiny with { ClipSteps = [1], UnetSteps = [1], UnetImages = 4, VaeDType = vaeDType };
        var reference = Path.Combine(_dir, "reference");
        new ToyModelRecipe(reference, options).Run();
        var killed = Path.Combine(_dir, "killed");
        using (var cts = new CancellationTokenSource())
        {
            var progress = new CancelAtStep(cts, 10);
            Assert.Throws<OperationCanceledException>(() => new ToyModelRecipe(killed, options, progress).Run(cts.Token));
        }
        new ToyModelRecipe(killed, options).Run();
        TensorAssert.SameSafetensors(Path.Combine(reference, "vae", ToyModelRecipe.ModelFolder, "diffusion_pytorch_model.safetensors"),
            Path.Combine(killed, "vae", ToyModelRecipe.ModelFolder, "diffusion_pytorch_model.safetensors"));
    }

    /// <summary>--vae-dtype bf16: the VAE computes in bf16 on fp32 masters (what its checkpoints hold), its loss falls as in
    /// fp32, and the VAE is measured and written in fp32 (weights a bf16 VAE could not hold).</summary>
    [Fact]
    public void TheVaeStageTrainsInMixedPrecisionOnFp32Masters()
    {
        var options = Tiny with { ClipSteps = [1], UnetSteps = [1], UnetImages = 4 };
        var progress = new RecordingProgress();
        var mixed = new ToyModelRecipe(Path.Combine(_dir, "bf16"), options with { VaeDType = "bf16" }, progress).Run()[0];
        var plain = new ToyModelRecipe(Path.Combine(_dir, "fp32"), options).Run()[0];
        Assert.Contains(progress.Infos, m => m.StartsWith("VAE:") && m.Contains("bf16 compute on fp32 master weights"));
        Assert.True(mixed.LastLoss < mixed.FirstLoss, $"loss {mixed.FirstLoss} → {mixed.LastLoss}");
        Assert.InRange(mixed.LastLoss / plain.LastLoss, 0.8, 1.25);
        Assert.InRange((double)mixed.Measurements["heldout_psnr_db"]! - (double)plain.Measurements["heldout_psnr_db"]!, -1.5, 1.5);
        using var file = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(Path.Combine(_dir, "bf16", "vae", ToyModelRecipe.ModelFolder, "diffusion_pytorch_model.safetensors"));
        var weights = file.Names.Select(n => file.Read(n)).ToList();
        Assert.All(weights, t => Assert.Equal(TorchSharp.torch.ScalarType.Float32, t.dtype));
        long finer = weights.Sum(t => t.ne(t.to_type(TorchSharp.torch.ScalarType.BFloat16).to_type(TorchSharp.torch.ScalarType.Float32)).sum().item<long>());
        Assert.True(finer > weights.Sum(t => t.numel()) / 2, $"only {finer} written weights carry more than bf16 holds");
        var wrong = Assert.Throws<ArgumentException>(() => new ToyModelRecipe(Path.Combine(_dir, "fp16"), options with { VaeDType = "fp16" }).Run());
        Assert.Contains("fp32 or bf16", wrong.Message);
        // The finished bf16 stage is not kept under fp32 without a word, nor under another seed: refused, naming them.
        var done = File.ReadAllText(Path.Combine(_dir, "bf16", "vae", ToyModelRecipe.DoneFile));
        var other = Assert.Throws<DiffusionPeft.DreamBooth.Checkpoints.InvalidCheckpointException>(() => new ToyModelRecipe(Path.Combine(_dir, "bf16"), options).Run());
        Assert.Contains("different training settings (VaeDType)", other.Message);
        other = Assert.Throws<DiffusionPeft.DreamBooth.Checkpoints.InvalidCheckpointException>(
            () => new ToyModelRecipe(Path.Combine(_dir, "bf16"), options with { VaeDType = "bf16", Seed = 1 }).Run());
        Assert.Contains("different training settings (Seed)", other.Message);
        Assert.Equal(done, File.ReadAllText(Path.Combine(_dir, "bf16", "vae", ToyModelRecipe.DoneFile)));
    }

    private sealed class CancelAtStep(CancellationTokenSource cts, long step) : DiffusionPeft.DreamBooth.Logging.ITrainingProgress
    {
        public void Info(string message) { }
        public void Warning(string message) { }
        public void Step(DiffusionPeft.DreamBooth.Logging.StepReport report) { if (report.Step == step) cts.Cancel(); }
    }
}
