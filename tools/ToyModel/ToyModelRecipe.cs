using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Core.Text;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Checkpoints;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Files;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Vocabulary;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>The settings of a toy-model reproduction; the defaults are the shipped model's.</summary>
public sealed record ToyModelOptions
{
    public long WorldSeed { get; init; }
    public string Device { get; init; } = "cpu";
    /// <summary>Seed of every initialisation and of each stage's training RNG.</summary>
    public long Seed { get; init; }
    public int VaeWidth { get; init; } = 64;
    /// <summary>The latent grid, 32 (the VAE downsamples 2×) or 16 (4×); see <see cref="ToyModelConfigs.Vae"/>.</summary>
    public int LatentSize { get; init; } = 32;
    /// <summary>
    /// Each stage's length in optimizer steps. More than one length are warm restarts (Loshchilov &amp; Hutter 2017,
    /// SGDR): the stage runs a cosine cycle to the first length, then trains on from that checkpoint to the next with
    /// the cycle stretched (the learning rate rises again), as a finished stage asked for more steps does.
    /// </summary>
    public IReadOnlyList<int> VaeSteps { get; init; } = [3500];
    public int VaeBatch { get; init; } = 16;
    /// <summary>The VAE stage's compute: fp32 (the shipped model's) or bf16 (mixed precision on fp32 master weights; fast
    /// only with AVX512-BF16, AMX or a GPU). Fixed for a stage's run: a resume in the other is refused.</summary>
    public string VaeDType { get; init; } = "fp32";
    public double VaeLr { get; init; } = 1e-3;
    public int TextWidth { get; init; } = 128;
    public int TextLayers { get; init; } = 4;
    public IReadOnlyList<int> ClipSteps { get; init; } = [4000];
    public int ClipBatch { get; init; } = 64;
    public double ClipLr { get; init; } = 1e-3;
    /// <summary>Scenes the VAE and CLIP stages draw from (rendered once, in memory).</summary>
    public int PretrainScenes { get; init; } = 20_000;
    public int UnetWidth { get; init; } = 32;
    /// <summary>On 32×32 latents, attention at the UNet's top level too (<see cref="ToyModelConfigs.Unet"/>).</summary>
    public TopLevelAttention UnetTopAttention { get; init; }
    /// <summary>The caption pooled into the UNet's timestep embedding too (<see cref="ToyModelConfigs.Unet"/>); false: cross-attention only (the shipped model's).</summary>
    public bool UnetTextEmbedding { get; init; }
    /// <summary>Captioned training images written for the UNet stage (dpeft train --mode full).</summary>
    public int UnetImages { get; init; } = 30_000;
    /// <summary>
    /// Plain scenes (one large object on a plain background, full captions; <see cref="World.PlainScene"/>) written beside
    /// the <see cref="UnetImages"/> for the UNet stage. The whole world alone teaches colour and place but hardly shape;
    /// these scenes teach it (toy-shape-isolation), mixed in throughout so it is not forgotten as a curriculum forgets it.
    /// </summary>
    public int UnetPlainScenes { get; init; } = 15_000;
    /// <summary>The sizes the plain scenes' objects are drawn from, uniformly (large: the shipped model's).</summary>
    public IReadOnlyList<ToySize> UnetPlainSizes { get; init; } = [ToySize.Large];
    public IReadOnlyList<int> UnetSteps { get; init; } = [8000];
    /// <summary>
    /// A toy model folder (or <see cref="EmbeddedDefaultModel.Keyword"/>) whose tokenizer, VAE and text encoder the recipe
    /// takes as finished stages, so that only the UNet's data and stage run: the UNet retrained on the shipped components.
    /// Null: every stage from nothing.
    /// </summary>
    public string? ComponentsFrom { get; init; }
    public int UnetBatch { get; init; } = 32;
    /// <summary>The UNet stage's peak rate: 1e-3 (the shipped runs/toy26; runs/toy22 had 5e-4, colour 80.8% against 87.6%, paired p 0.003).</summary>
    public double UnetLr { get; init; } = 1e-3;
    public double CaptionDropout { get; init; } = 0.1;
    /// <summary>Min-SNR loss weighting's γ for the UNet (Hang et al. 2023); null trains with the plain v-prediction loss.</summary>
    public double? UnetSnrGamma { get; init; }
    /// <summary>
    /// The UNet stage's compute dtype: fp32 (the shipped model's), bf16, mixed precision on fp32 master weights
    /// (<c>dpeft train --mode full --dtype bf16</c>; about 1.27× faster on a CPU with AVX512-BF16, measured on the toy UNet),
    /// or auto: bf16 where it is fast, fp32 elsewhere, a resumed run keeping its own.
    /// </summary>
    public string UnetDType { get; init; } = "fp32";
    /// <summary>How the UNet stage draws timesteps (uniform: DDPM's; logit-normal with mean 0, std 1: SD3's).</summary>
    public TimestepSampling UnetTimestepSampling { get; init; } = TimestepSampling.Uniform;
    /// <summary>The UNet stage's weight average (dpeft train --ema-decay): the written model is the average; null: none.</summary>
    public double? UnetEmaDecay { get; init; }
    /// <summary>Train the UNet on the text encoder's states whitened (dpeft train --whiten-conditioning, <c>ConditioningWhitening</c>; the shipped model's); false: as they are (the models before runs/toy22).</summary>
    public bool UnetWhitenConditioning { get; init; } = true;
    /// <summary>How far the whitening goes (dpeft train --whiten-strength; 1: fully).</summary>
    public double UnetWhitenStrength { get; init; } = 1.0;
    /// <summary>
    /// A masked loss for the UNet stage (dpeft train --masked-loss): the data gets each scene's object mask and the
    /// background counts with this weight (0: not at all; 1: as without a mask); null: no mask (the shipped model's).
    /// </summary>
    public double? UnetUnmaskedWeight { get; init; }
    /// <summary>
    /// The guidance scale written into the model's generation_config.json (<see cref="GenerationConfig"/>): what generate,
    /// toy-model evaluate and the demo use when not told otherwise. Null: the run's own (its base folder's file), or
    /// <see cref="DefaultGuidanceScale"/> for a run without one. A value on a finished run rewrites that file alone.
    /// </summary>
    public double? GuidanceScale { get; init; }

    /// <summary>
    /// 4: the scale at which the whitened UNets drew colour, position and shape best on average on the validation scenes
    /// (held-out 200–399), not on the 0–199 their scores are reported on: runs/toy22 of 1.5, 2, 3, 4, 5 and 7.5, the
    /// shipped runs/toy26 of 3, 4 and 5.
    /// </summary>
    public const double DefaultGuidanceScale = 4;
    public int CheckpointEvery { get; init; } = 100;
    public int ValidateEvery { get; init; } = 500;
    /// <summary>Held-out scenes the VAE's PSNR is measured on.</summary>
    public int EvalScenes { get; init; } = 256;

    /// <summary>Whether <paramref name="lengths"/> can be a stage's lengths: at least one, each at least 1, increasing.</summary>
    public static bool AreStageLengths(IReadOnlyList<int> lengths) =>
        lengths.Count > 0 && lengths[0] >= 1 && lengths.Zip(lengths.Skip(1)).All(p => p.Second > p.First);

    /// <summary>A miniature of the whole chain for tests: a few dozen steps per stage on tiny widths.</summary>
    public static ToyModelOptions Miniature => new()
    {
        VaeWidth = 32, LatentSize = 16, VaeSteps = [30], VaeBatch = 8, TextWidth = 64, TextLayers = 2, ClipSteps = [30], ClipBatch = 32, PretrainScenes = 256,
        UnetWidth = 16, UnetImages = 64, UnetPlainScenes = 16, UnetSteps = [30], UnetBatch = 8, CheckpointEvery = 10, ValidateEvery = 0, EvalScenes = 16,
    };
}

/// <summary>What one stage left behind: its losses and its measurements.</summary>
public sealed record StageReport(string Stage, int Steps, double FirstLoss, double LastLoss, double Seconds, JsonObject Measurements);

/// <summary>
/// Reproduces the toy Stable Diffusion from nothing, as SD's pieces were made: world → VAE (reconstruction + KL) →
/// text encoder (contrastive with an image tower, then frozen) → UNet (every weight, noise prediction, caption dropout,
/// through `dpeft train --mode full`) → OUT/model, a diffusers folder. Every stage trains with the project's
/// <see cref="Trainer"/> (checkpoints, exact resume, log.jsonl, loss.png); a rerun skips finished stages and resumes
/// the unfinished one from its last checkpoint.
/// </summary>
public sealed class ToyModelRecipe(string outDirectory, ToyModelOptions options, ITrainingProgress? progress = null)
{
    public const string DoneFile = "done.json", ModelFolder = "model";

    private readonly string _out = Path.GetFullPath(outDirectory);
    private readonly ITrainingProgress _progress = progress ?? NullTrainingProgress.Instance;
    private readonly World _world = new(options.WorldSeed);

    public string TokenizerFolder => Path.Combine(_out, "tokenizer");
    public string VaeFolder => Path.Combine(_out, "vae");
    public string ClipFolder => Path.Combine(_out, "clip");
    public string DataFolder => Path.Combine(_out, "data", "train");
    public string BaseFolder => Path.Combine(_out, "base");
    public string UnetRun => Path.Combine(_out, "unet");
    public string Model => Path.Combine(_out, ModelFolder);

    public IReadOnlyList<StageReport> Run(CancellationToken cancellationToken = default)
    {
        foreach (var (stage, lengths) in new[] { ("VAE", options.VaeSteps), ("text encoder", options.ClipSteps), ("UNet", options.UnetSteps) })
            if (!ToyModelOptions.AreStageLengths(lengths))
                throw new ArgumentException($"{stage} stage: its lengths must be positive and increasing step counts, got [{string.Join(", ", lengths)}]");
        if (options.UnetPlainScenes > 0 && options.UnetPlainSizes.Count == 0)
            throw new ArgumentException($"{options.UnetPlainScenes:N0} plain scenes need at least one size to draw their objects from");
        if (options.VaeDType is not ("fp32" or "bf16"))
            throw new ArgumentException($"the VAE stage computes in fp32 or bf16 (mixed precision), not {options.VaeDType}");
        if (!ToyModelConfigs.IsLatentSize(options.LatentSize))
            throw new ArgumentException($"the latent grid must be 16 or 32, got {options.LatentSize}");
        if (options.UnetTopAttention != TopLevelAttention.None && options.LatentSize != 32)
            throw new ArgumentException("top-level attention is for 32×32 latents (on 16×16 the top level has cross-attention already)");
        if (options.UnetWhitenConditioning && options.UnetTextEmbedding)
            throw new ArgumentException("--unet-whiten-conditioning folds the whitening into the cross-attention, and --unet-text-embedding reads the caption outside it: use one of them (--unet-whiten-conditioning false for the text embedding)");
        if (TrainedLatentSize() is { } trained && trained != options.LatentSize)
            throw new ArgumentException($"{VaeFolder} holds a VAE with {trained}×{trained} latents, not {options.LatentSize}×{options.LatentSize}: " +
                                        "a new latent grid needs a new VAE, text encoder runs can be copied (give another --out)");
        Directory.CreateDirectory(_out);
        if (options.ComponentsFrom is { } from) AdoptComponents(from);
        var runGuidance = GenerationConfig.Read(BaseFolder);   // read before a set-aside moves the base, so the run keeps its scale
        if (!ToyVocabulary.IsComplete(TokenizerFolder)) WriteTokenizer();
        var tokenizer = ToyVocabulary.Load(TokenizerFolder);
        var device = TorchOptions.ParseDevice(options.Device);
        RefuseOtherStageSettings(VaeFolder, VaeSettings(options.VaeSteps[^1]));
        RefuseOtherStageSettings(ClipFolder, ClipSettings(options.ClipSteps[^1]));
        var (vae, vaeTrained) = Stage(VaeFolder, options.VaeSteps, steps => TrainVae(device, steps, cancellationToken));
        var (clip, clipTrained) = Stage(ClipFolder, options.ClipSteps, steps => TrainClip(tokenizer, device, steps, cancellationToken));
        var reports = new List<StageReport> { vae, clip };
        if (vaeTrained || clipTrained) SetAsideStale($"{(vaeTrained ? "the VAE" : "the text encoder")} trained on");
        if (BaseUnet() is { } layout)
        {
            if (layout.BlockOutChannels[0] != options.UnetWidth) SetAsideStale($"the UNet's width changed ({layout.BlockOutChannels[0]} → {options.UnetWidth})");
            else if (options.LatentSize == 32 && TopLevelAttentions.Of(layout) is var top && top != options.UnetTopAttention)
                SetAsideStale($"the UNet's top-level attention changed ({TrainConfigYaml.EnumName(top)} → {TrainConfigYaml.EnumName(options.UnetTopAttention)})");
            else if (layout.HasTextTimeEmbedding != options.UnetTextEmbedding)
                SetAsideStale($"the UNet's text embedding changed ({OnOff(layout.HasTextTimeEmbedding)} → {OnOff(options.UnetTextEmbedding)})");
        }
        WriteUnetData();
        if (!File.Exists(Path.Combine(BaseFolder, "model_index.json"))) WriteBase(tokenizer);
        RefuseOtherUnetSettings();   // before the guidance below is written: a refused run changes nothing
        // Given, it is written; not given, a run keeps the scale it has (a rerun changes nothing), a run without one gets the default.
        var generation = options.GuidanceScale is { } scale ? new GenerationConfig(scale)
            : runGuidance ?? new GenerationConfig(ToyModelOptions.DefaultGuidanceScale);
        generation.Write(BaseFolder);   // the UNet stage's validation images use it too
        var (unet, unetTrained) = Stage(UnetRun, options.UnetSteps, steps => TrainUnet(steps, cancellationToken));
        reports.Add(unet);
        if (unetTrained && Directory.Exists(Model)) Directory.Delete(Model, recursive: true);   // the UNet trained (on): the old model is stale
        if (!Directory.Exists(Model)) CopyDirectory(Path.Combine(UnetRun, FullFineTuneTarget.ModelFolder), Model);
        generation.Write(Model);
        return reports;
    }

    /// <summary>
    /// A stage: trained (or resumed) unless done.json says it reached <paramref name="steps"/>; a done stage asked for more
    /// steps resumes from its last checkpoint (`--unet-steps 6000` on a finished 2,500-step run trains 3,500 more).
    /// </summary>
    private (StageReport Report, bool Trained) Stage(string folder, IReadOnlyList<int> lengths, Func<int, StageReport?> train)
    {
        bool trained = false;
        StageReport report = null!;
        foreach (int steps in lengths)
        {
            (report, bool t) = Stage(folder, steps, train);
            trained |= t;
        }
        return (report, trained);
    }

    private (StageReport Report, bool Trained) Stage(string folder, int steps, Func<int, StageReport?> train)
    {
        var done = Path.Combine(folder, DoneFile);
        if (File.Exists(done))
        {
            var finished = JsonSerializer.Deserialize<StageReport>(File.ReadAllText(done))!;
            if (finished.Steps >= steps) return (finished, false);
            _progress.Info($"{finished.Stage}: done at {finished.Steps} steps, {steps} asked: training on from its last checkpoint");
            File.Delete(done);
        }
        var report = train(steps) ?? throw new OperationCanceledException($"{Path.GetFileName(folder)} stage interrupted; rerun to resume");
        AtomicFile.WriteAllText(done, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        _progress.Info($"{report.Stage}: loss {report.FirstLoss:G4} → {report.LastLoss:G4} in {report.Steps} steps, {report.Seconds / 60:F1} min; {report.Measurements.ToJsonString()}");
        return (report, true);
    }

    /// <summary>
    /// OUT/data/train: the world's captioned training scenes and the plain ones, with done.json naming how many of each.
    /// A folder written for other counts is rewritten, and the UNet run made on it moved aside.
    /// </summary>
    private void WriteUnetData()
    {
        var done = Path.Combine(DataFolder, DoneFile);
        var sizes = PlainSizes(options);
        var sizeList = ToyGrammar.SizeList(sizes);
        var wanted = DataMeasurements(options);
        if (File.Exists(done))
        {
            var written = JsonNode.Parse(File.ReadAllText(done))!.AsObject();
            // Runs made before the counts were recorded wrote "{}": the default images and no plain scenes; before the
            // sizes were, the plain scenes were large.
            int images = (int?)written["images"] ?? options.UnetImages, plain = (int?)written["plain_scenes"] ?? 0;
            var plainSizes = (string?)written["plain_sizes"] ?? ToyGrammar.Word(ToySize.Large);
            bool masks = (bool?)written["masks"] ?? false;
            if (images == options.UnetImages && plain == options.UnetPlainScenes && (plain == 0 || plainSizes == sizeList) && masks == Masked(options)) return;
            SetAsideStale($"the UNet's data changed ({images:N0} + {plain:N0} plain scenes ({plainSizes}){(masks ? " with masks" : "")} → {options.UnetImages:N0} + " +
                $"{options.UnetPlainScenes:N0} ({sizeList}){(Masked(options) ? " with masks" : "")})");
            Directory.Delete(DataFolder, recursive: true);
        }
        _progress.Info($"writing {options.UnetImages:N0} captioned training images and {options.UnetPlainScenes:N0} plain scenes ({sizeList})" +
                       $"{(Masked(options) ? ", with their object masks," : "")} to {DataFolder}");
        ToyWorldFiles.WriteDataset(DataFolder, options.WorldSeed, options.UnetImages, masks: Masked(options));
        ToyWorldFiles.WritePlainDataset(DataFolder, options.WorldSeed, options.UnetPlainScenes, sizes, Masked(options));
        AtomicFile.WriteAllText(done, wanted.ToJsonString());
    }

    /// <summary>
    /// The VAE or the text encoder trained (on) in this call, or the UNet's width, top-level attention, text embedding or data changed: a base folder and UNet run made
    /// before no longer match. They are moved aside (OUT/base.stale-N, OUT/unet.stale-N, OUT/model.stale-N), never deleted, and the
    /// UNet stage starts again from the new pieces.
    /// </summary>
    private void SetAsideStale(string reason)
    {
        string[] stale = [BaseFolder, UnetRun, Model];
        if (!stale.Any(Directory.Exists)) return;
        int n = 1;
        while (stale.Any(d => Directory.Exists($"{d}.stale-{n}"))) n++;
        foreach (var dir in stale.Where(Directory.Exists))
        {
            Directory.Move(dir, $"{dir}.stale-{n}");
            _progress.Warning($"{reason}, so {Path.GetFileName(dir)}/ no longer matches: moved to {Path.GetFileName(dir)}.stale-{n}/; the UNet stage starts again");
        }
    }

    private TrainingLoop Loop(int steps, double lr, long seedOffset) => new()
    {
        Steps = steps, Lr = lr, WeightDecay = 0.01, MaxGradNorm = 1.0, LrScheduler = LrScheduleKind.Cosine, LrWarmupSteps = Math.Min(100, steps / 10),
        Seed = options.Seed + seedOffset, CheckpointEvery = options.CheckpointEvery, Keep = 2, Resume = "latest", PlotEvery = 25,
    };

    /// <summary>A stage's settings; its step count may change on resume (as dpeft train's --steps), e.g. to train a stage longer.</summary>
    private static JsonRunSettings Settings(JsonObject stage) => new(stage, ["VaeSteps", "ClipSteps", "DinoSteps"], fileName: "stage.json");

    private JsonRunSettings VaeSettings(int steps)
    {
        var stage = JsonSerializer.SerializeToNode(new { stage = "vae", options.WorldSeed, options.Seed, options.VaeWidth, VaeSteps = steps, options.VaeBatch, options.VaeLr, options.PretrainScenes })!.AsObject();
        if (options.LatentSize != 16) stage["LatentSize"] = options.LatentSize;   // absent: 16, as in runs made before 32 existed
        if (options.VaeDType == "bf16") stage["VaeDType"] = "bf16";              // absent: fp32
        return Settings(stage);
    }

    private JsonRunSettings ClipSettings(int steps) => Settings(JsonSerializer.SerializeToNode(new
    {
        stage = "clip", options.WorldSeed, options.Seed, options.TextWidth, options.TextLayers, ClipSteps = steps, options.ClipBatch, options.ClipLr, options.PretrainScenes,
    })!.AsObject());

    /// <summary>
    /// A stage keeps its settings (seeds, dtype): others are refused, naming them, finished or not, before anything in it
    /// changes, as the trainer refuses them on a resume; a finished stage would otherwise be kept as it is without a word.
    /// Adopted stages (--components-from) have no checkpoints and are checked by their files.
    /// </summary>
    private static void RefuseOtherStageSettings(string folder, IRunSettings asked) =>
        ResumeCheckpoint.RefuseOtherSettings(ResumeCheckpoint.Latest(Path.Combine(folder, "checkpoints")), asked,
                                             $" (or move {folder} aside to train the stage again)");

    /// <summary>Trains with the project's loop, resuming from the stage's last checkpoint; null when interrupted.</summary>
    private TrainResult? Train(string folder, TrainingLoop loop, IRunSettings settings, ITrainingTarget target,
                               ITrainingObjective objective, int items, int batch, CancellationToken ct)
    {
        using var trainer = new Trainer(loop, settings, folder, target, objective, new DataOrder(items, batch, loop.Seed), _progress);
        var result = trainer.Run(ct);
        if (result.Interrupted) return null;
        trainer.WriteResult();
        return result;
    }

    private StageReport? TrainVae(Device device, int steps, CancellationToken ct)
    {
        manual_seed(options.Seed + 1);
        var config = ToyModelConfigs.Vae(options.VaeWidth, options.LatentSize);
        using var vae = new AutoencoderKL(config);
        ModelPlacement.Place(vae, ScalarType.Float32, device);
        bool mixed = options.VaeDType == "bf16";
        var scenes = new SceneImages(_world, options.PretrainScenes);
        // Mixed precision: the masters start from the fp32 initialisation, then the VAE computes in bf16.
        var initial = mixed ? vae.named_parameters().ToDictionary(p => "vae." + p.name, p => p.parameter.detach()) : null;
        if (mixed) vae.to(ScalarType.BFloat16);
        using var target = new ModuleTarget([("vae", vae, options.VaeLr)], (_, _) => { }, initial);
        if (initial is not null) foreach (var t in initial.Values) t.Dispose();
        _progress.Info($"VAE: {target.ParameterCount:N0} weights, {steps} steps of {options.VaeBatch} scenes" + (mixed ? "; bf16 compute on fp32 master weights" : ""));
        var run = Train(VaeFolder, Loop(steps, options.VaeLr, 1), VaeSettings(steps), target, new AutoencoderObjective(vae, scenes),
            scenes.Count, options.VaeBatch, ct);
        if (run is not { } r) return null;
        if (mixed)
        {
            // Measured and written in fp32, from the masters.
            vae.to(ScalarType.Float32);
            var own = vae.named_parameters().ToDictionary(p => "vae." + p.name, p => p.parameter);
            using var noGrad = no_grad();
            foreach (var (name, master) in target.ParameterGroups.SelectMany(g => g.Parameters)) own[name].copy_(master);
        }

        // diffusers' scaling_factor is 1 / std of the latents (SD: 0.18215); the UNet then sees unit-variance latents.
        using var _ = no_grad();
        vae.eval();
        var sampleItems = Enumerable.Range(0, Math.Min(512, scenes.Count)).ToArray();
        double std;
        using (var scope = NewDisposeScope())
            std = cat(sampleItems.Chunk(64).Select(c => vae.Encode(scenes.Pixels(c, device)).Mean).ToArray()).std().item<float>();
        var heldOut = new SceneImages(_world, options.EvalScenes, World.HeldOutStart);
        double psnr = VaePsnr(vae, heldOut, device);
        var final = new AutoencoderKL(config with { ScalingFactor = 1 / std });
        final.load_state_dict(vae.state_dict());
        SaveComponent(Path.Combine(VaeFolder, ModelFolder), final.Config.ToJson(), final, "diffusion_pytorch_model.safetensors");
        return StageLog.Report("vae", VaeFolder, r, new JsonObject { ["heldout_psnr_db"] = Math.Round(psnr, 2), ["scaling_factor"] = 1 / std, ["parameters"] = target.ParameterCount });
    }

    /// <summary>Mean PSNR (dB, pixels in [0, 1]) of decode(posterior mode) over held-out scenes.</summary>
    public static double VaePsnr(AutoencoderKL vae, SceneImages scenes, Device device)
    {
        using var _ = no_grad();
        var values = new List<double>();
        foreach (var chunk in Enumerable.Range(0, scenes.Count).Chunk(32))
        {
            using var scope = NewDisposeScope();
            var x = scenes.Pixels(chunk, device);
            var rec = vae.forward(x).clamp(-1, 1);
            var mse = ((rec - x) / 2).pow(2).mean([1, 2, 3]).cpu().data<float>().ToArray();
            values.AddRange(mse.Select(m => 10 * Math.Log10(1 / Math.Max(m, 1e-12))));
        }
        return values.Average();
    }

    private StageReport? TrainClip(ClipTokenizer tokenizer, Device device, int steps, CancellationToken ct)
    {
        manual_seed(options.Seed + 2);
        var textConfig = ToyModelConfigs.TextEncoder(tokenizer, options.TextWidth, options.TextLayers);
        using var clip = new ToyClip(textConfig, options.TextWidth);
        ModelPlacement.Place(clip, ScalarType.Float32, device);
        var scenes = new SceneImages(_world, options.PretrainScenes);
        var target = new ModuleTarget([("clip", clip, options.ClipLr)], (_, _) => { });
        _progress.Info($"text encoder + image tower: {target.ParameterCount:N0} weights, {steps} steps of {options.ClipBatch} pairs");
        var objective = new ContrastiveObjective(clip, scenes, tokenizer);
        var run = Train(ClipFolder, Loop(steps, options.ClipLr, 2), ClipSettings(steps), target, objective, scenes.Count, options.ClipBatch, ct);
        if (run is not { } r) return null;

        var retrieval = ToyClipRetrieval.HeldOut(clip, objective, _world, options.EvalScenes, device);
        SaveComponent(Path.Combine(ClipFolder, ModelFolder), textConfig.ToJson(), clip, "toy_clip.safetensors");
        SaveComponent(Path.Combine(ClipFolder, "text_encoder"), textConfig.ToJson(), clip.text_model, "model.safetensors");
        return StageLog.Report("clip", ClipFolder, r, new JsonObject
        {
            ["heldout_caption_top1"] = Math.Round(retrieval.CaptionTop1, 4), ["heldout_image_top1"] = Math.Round(retrieval.ImageTop1, 4),
            ["heldout_shape_top1"] = Math.Round(retrieval.ShapeTop1, 4),
            ["chance"] = Math.Round(1.0 / retrieval.Candidates, 4), ["parameters"] = target.ParameterCount,
        });
    }

    /// <summary>
    /// Takes <paramref name="from"/>'s tokenizer, VAE and text encoder as this run's finished stages (their done.json
    /// names the source and counts as any length). A run that has them already keeps them when they are the source's,
    /// file for file (the same model from another path, e.g. a rebuilt dpeft's embedded folder); one that trained its
    /// own, or took another model's, is refused: nothing is overwritten.
    /// </summary>
    private void AdoptComponents(string from)
    {
        var source = from == EmbeddedDefaultModel.Keyword ? EmbeddedDefaultModel.Folder : Path.GetFullPath(from);
        (string Part, string Check)[] parts = [("tokenizer", "vocab.json"), ("vae", "config.json"), ("text_encoder", "config.json")];
        foreach (var (part, check) in parts)
            if (!File.Exists(Path.Combine(source, part, check)))
                throw new FileNotFoundException($"{from}: not a toy model folder to take components from (no {part}/{check})", Path.Combine(source, part, check));
        var vaeConfig = AutoencoderKLConfig.Load(Path.Combine(source, "vae", "config.json"));
        int latents = vaeConfig.SampleSize / vaeConfig.DownsampleFactor;
        if (latents != options.LatentSize)
            throw new ArgumentException($"{from}'s VAE has {latents}×{latents} latents, not {options.LatentSize}×{options.LatentSize}: take its components with --latent-size {latents}");
        foreach (var (stage, folder, part, inner) in new[] { ("vae", VaeFolder, "vae", ModelFolder), ("clip", ClipFolder, "text_encoder", "text_encoder") })
        {
            var done = Path.Combine(folder, DoneFile);
            if (Directory.Exists(folder))
            {
                var had = File.Exists(done) ? JsonSerializer.Deserialize<StageReport>(File.ReadAllText(done)) : null;
                if (had?.Measurements["source"] is not null && SameFiles(Path.Combine(source, part), Path.Combine(folder, inner))) continue;
                throw new ArgumentException($"{folder} already holds a {stage} stage ({(had is null ? "unfinished" : had.Measurements["source"] is { } other ? $"taken from {other}" : "trained here")}): " +
                                            $"components from {from} need a new --out");
            }
            if (Directory.Exists(folder + ".adopting")) Directory.Delete(folder + ".adopting", recursive: true);   // a copy cut short
            CopyDirectory(Path.Combine(source, part), Path.Combine(folder + ".adopting", inner));
            AtomicFile.WriteAllText(Path.Combine(folder + ".adopting", DoneFile), JsonSerializer.Serialize(
                new StageReport(stage, int.MaxValue, 0, 0, 0, new JsonObject { ["source"] = source }), new JsonSerializerOptions { WriteIndented = true }));
            Directory.Move(folder + ".adopting", folder);
        }
        if (!Directory.Exists(TokenizerFolder)) CopyDirectory(Path.Combine(source, "tokenizer"), TokenizerFolder);
        else if (!SameFiles(Path.Combine(source, "tokenizer"), TokenizerFolder))
            throw new ArgumentException($"{TokenizerFolder} holds another tokenizer than {from}'s: components from {from} need a new --out");
    }

    /// <summary>Whether every file of <paramref name="source"/> is in <paramref name="copy"/>, byte for byte.</summary>
    private static bool SameFiles(string source, string copy) =>
        Directory.EnumerateFiles(source).All(f => File.Exists(Path.Combine(copy, Path.GetFileName(f)))
                                                  && File.ReadAllBytes(f).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(copy, Path.GetFileName(f)))));

    /// <summary>The latent grid of the VAE this run trained; null before it has one (an unfinished VAE stage's checkpoints carry it in their settings, which refuse a resume with another).</summary>
    private int? TrainedLatentSize()
    {
        var config = Path.Combine(VaeFolder, ModelFolder, "config.json");
        if (!File.Exists(config)) return null;
        var vae = AutoencoderKLConfig.Load(config);
        return vae.SampleSize / vae.DownsampleFactor;
    }

    /// <summary>The config of OUT/base's UNet (its width and layout); null when there is no base yet.</summary>
    private UNet2DConditionConfig? BaseUnet()
    {
        var config = Path.Combine(BaseFolder, "unet", "config.json");
        return File.Exists(config) ? UNet2DConditionConfig.Load(config) : null;
    }

    private void WriteBase(ClipTokenizer tokenizer)
    {
        manual_seed(options.Seed + 3);
        var text = CLIPTextModel.FromPretrained(Path.Combine(ClipFolder, "text_encoder"));
        var vae = AutoencoderKL.FromPretrained(Path.Combine(VaeFolder, ModelFolder));
        var unet = new UNet2DConditionModel(ToyModelConfigs.Unet(text.Config.HiddenSize, options.UnetWidth, options.LatentSize, options.UnetTopAttention,
            options.UnetTextEmbedding));
        using var model = new StableDiffusionModel
        {
            TextEncoder = text, Vae = vae, Unet = unet, Tokenizer = tokenizer, SchedulerConfig = ToyModelConfigs.Scheduler(), Name = "toy-world base",
        };
        DiffusersFolderWriter.Write(model, BaseFolder);
    }

    /// <summary>
    /// The UNet stage's run (dpeft train --mode full): every weight of <paramref name="baseModel"/>'s UNet on the captioned
    /// images, with the options' learning rate, batch, loss weighting and timestep sampling, a cosine schedule, latents
    /// cached in memory, bf16 weights written. Experiments that train the stage on other data use the same settings.
    /// </summary>
    public static TrainConfig UnetStage(ToyModelOptions options, string baseModel, string images, string run, int steps) => new()
    {
        Model = baseModel, Images = images, Out = run, Mode = TrainingMode.Full, Resolution = 64, Crop = CropMode.Center,
        Steps = steps, Lr = options.UnetLr, Batch = options.UnetBatch, LrScheduler = LrScheduleKind.Cosine,
        LrWarmupSteps = Math.Min(200, steps / 10), Seed = options.Seed + 4, CaptionDropout = options.CaptionDropout, SnrGamma = options.UnetSnrGamma,
        TimestepSampling = options.UnetTimestepSampling,
        CheckpointEvery = options.CheckpointEvery, Keep = 2, Resume = "latest", SaveDType = SaveDType.Bf16, Device = options.Device,
        ValidateEvery = options.ValidateEvery, ValidationPrompts = new(ToyModelEvaluation.ValidationPrompts), ValidationSeeds = new([1, 2]),
        PlotEvery = 25, CacheLatents = LatentCacheMode.Memory, DType = options.UnetDType, EmaDecay = options.UnetEmaDecay,
        WhitenConditioning = options.UnetWhitenConditioning, WhitenStrength = options.UnetWhitenStrength,
        MaskedLoss = Masked(options), UnmaskedWeight = options.UnetUnmaskedWeight ?? 0,
    };

    private static string OnOff(bool on) => on ? "on" : "off";

    private static bool Masked(ToyModelOptions options) => options.UnetUnmaskedWeight is not null;

    /// <summary>
    /// The UNet stage's config for <paramref name="steps"/>, with the dtype and warm-up of the run already started
    /// (<paramref name="started"/>: its checkpoint's settings, null before its first checkpoint). Its warm-up,
    /// min(200, steps / 10) of the length it started with, shapes the trajectory, so a longer length keeps it. Dtype auto
    /// is the started run's, or for a new run bf16 where it is fast (a GPU, a CPU with AVX512-BF16 or AMX) and fp32 elsewhere.
    /// </summary>
    private TrainConfig UnetStageOfRun(int steps, out TrainConfig? started)
    {
        var config = UnetStage(options, BaseFolder, DataFolder, UnetRun, steps);
        started = ResumeCheckpoint.Settings(config);
        var dtype = !TorchOptions.IsAuto(options.UnetDType) ? options.UnetDType
            : TrainDType.DTypeOf(started) ?? TorchOptions.Name(TorchOptions.ResolveDType(TorchOptions.AutoDType, TorchOptions.ParseDevice(options.Device)));
        config = config with { DType = dtype };
        return started is null ? config : config with { LrWarmupSteps = started.LrWarmupSteps };
    }

    /// <summary>
    /// A UNet run keeps its settings: another rate, batch, loss or dtype is refused, naming them, before anything changes,
    /// also on a finished stage, which would otherwise be kept as it is without a word. Its folders (model, images) are
    /// OUT's own, which the base and data checks cover, so an OUT moved elsewhere still reruns.
    /// </summary>
    private void RefuseOtherUnetSettings()
    {
        var asked = UnetStageOfRun(options.UnetSteps[^1], out var started);
        if (started is null) return;
        var differences = TrainConfigYaml.TrainingDifferences(started, asked).Except(["model", "images"]).ToList();
        if (differences.Count > 0)
            throw new InvalidCheckpointException($"{UnetRun}: trained with different training settings ({string.Join(", ", differences)}); " +
                                                 $"give its settings ({string.Join(", ", differences.Select(FlagOf))}, as in its config.yaml), or move it aside to train the UNet again");
    }

    /// <summary>The toy-model train flag that sets a UNet run's config.yaml key.</summary>
    private static string FlagOf(string key) => key switch
    {
        "lr" => "--unet-lr", "batch" => "--unet-batch", "snr-gamma" => "--unet-snr-gamma", "timestep-sampling" => "--unet-timestep-sampling",
        "dtype" => "--unet-dtype", "whiten-conditioning" => "--unet-whiten-conditioning", "whiten-strength" => "--unet-whiten-strength",
        "masked-loss" or "unmasked-weight" => "--unet-masked-loss", "seed" => "--seed",
        _ => key,
    };

    private StageReport? TrainUnet(int steps, CancellationToken ct)
    {
        var result = DreamBoothRun.Run(UnetStageOfRun(steps, out _), _progress, ct);
        if (result.Interrupted) return null;
        return StageLog.Report("unet", UnetRun, result, DataMeasurements(options));
    }

    /// <summary>The plain scenes' sizes in the grammar's order, so that the data is a function of the set named.</summary>
    private static ToySize[] PlainSizes(ToyModelOptions options) => [.. options.UnetPlainSizes.Distinct().Order()];

    private static JsonObject DataMeasurements(ToyModelOptions options) => new()
    {
        ["images"] = options.UnetImages, ["plain_scenes"] = options.UnetPlainScenes, ["plain_sizes"] = ToyGrammar.SizeList(PlainSizes(options)),
        ["masks"] = Masked(options),
    };


    /// <summary>A diffusers/transformers component folder: config.json and the module's weights.</summary>
    private static void SaveComponent(string folder, JsonObject config, nn.Module module, string weightsName)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(Path.Combine(folder, weightsName), module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu()),
            new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>OUT/tokenizer, whole or not at all: its four files are written beside it, then the folder renamed.</summary>
    private void WriteTokenizer()
    {
        var temp = TokenizerFolder + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        ToyVocabulary.Write(temp);
        if (Directory.Exists(TokenizerFolder)) Directory.Delete(TokenizerFolder, true);   // a partial one (an older, non-atomic write): derived, rewritten whole
        Directory.Move(temp, TokenizerFolder);
    }

    private static void CopyDirectory(string from, string to)
    {
        var temp = to + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(temp, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        Directory.Move(temp, to);
    }
}
