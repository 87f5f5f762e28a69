using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.Core.Imaging;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>
/// Stand-in for the adapters until Adapters lands: trains the UNet's up-block parameters of the embedded tiny model
/// (everything else frozen), so the whole SD path runs (VAE moments, CLIP embeddings, DDPM noising, UNet).
/// </summary>
internal sealed class UnetUpBlocksSession : ITrainingTarget
{
    public UnetUpBlocksSession(StableDiffusionModel model, double lr)
    {
        foreach (var p in model.TextEncoder.parameters().Concat(model.Vae.parameters()).Concat(model.Unet.parameters())) p.requires_grad_(false);
        var trained = model.Unet.named_parameters().Where(p => p.name.StartsWith("up_blocks.") || p.name.StartsWith("conv_out.")).ToArray();
        foreach (var (_, p) in trained) p.requires_grad_(true);
        ParameterGroups = [new("unet", trained.Select(p => (p.name, p.parameter)).ToArray(), lr)];
    }

    public IReadOnlyList<TrainableGroup> ParameterGroups { get; }
    public long RampStep { get; private set; }
    public void OnOptimizerStep(long stepsTaken) => RampStep = stepsTaken;
    public void WriteFinal(string runDirectory, long stepsTaken) =>
        DiffusionPeft.Diffusion.IO.SafetensorsWriter.Write(Path.Combine(runDirectory, "adapter.safetensors"),
            ParameterGroups[0].Parameters.ToDictionary(p => p.Name, p => (Tensor)p.Parameter));
}

/// <summary>Dies (like a SIGKILL) when asked for the loss of a given step.</summary>
internal sealed class CrashingObjective(ITrainingObjective inner, long crashAtStep) : ITrainingObjective
{
    public Tensor Loss(Batch batch, TrainingRng rng) => batch.Step == crashAtStep ? throw new SimulatedKill() : inner.Loss(batch, rng);
}

public sealed class TinyStableDiffusionTrainingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-sd-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string Images()
    {
        var dir = Path.Combine(_dir, "images");
        if (Directory.Exists(dir)) return dir;
        Directory.CreateDirectory(dir);
        foreach (var (name, w, h) in new[] { ("a.png", 96, 64), ("b.png", 64, 80), ("c.png", 70, 70) })
        {
            var px = new byte[w * h * 3];
            for (int i = 0; i < px.Length; i++) px[i] = (byte)((i / 3 % w) * 255 / w);
            PngWriter.Write(Path.Combine(dir, name), new RgbImage(w, h, px));
        }
        File.WriteAllText(Path.Combine(dir, "broken.jpg"), "not a jpeg");
        return dir;
    }

    private TrainConfig Config(string run, int steps) => new()
    {
        Model = EmbeddedDefaultModel.UntrainedKeyword, Images = Images(), Prompt = "a photo of sks dog", Out = Path.Combine(_dir, run), Resolution = 64,
        Steps = steps, Lr = 2e-3, Batch = 2, Seed = 31, CheckpointEvery = 2, Keep = 0, Flip = true, SnrGamma = 5, NoiseOffset = 0.05,
        PlotEvery = 100,
    };

    private static (TrainResult Result, UnetUpBlocksSession Session, RecordingProgress Progress, StableDiffusionModel Model) Train(
        TrainConfig config, long? crashAt = null, IValidationSampler? validation = null, IClassImageSampler? classes = null)
    {
        var model = EmbeddedDefaultModel.CreateUntrained();
        var progress = new RecordingProgress();
        var run = new DreamBoothRun(config, ImageLoaderDecoder.Instance, progress);
        run.PrepareData();
        if (classes is not null) run.PrepareClassImages(classes, batchSize: 2);
        var session = new UnetUpBlocksSession(model, config.Lr);
        using var training = new StableDiffusionTraining(run, model, progress.Warning);
        ITrainingObjective objective = crashAt is { } k ? new CrashingObjective(training.Objective, k) : training.Objective;
        return (run.TrainWith(session, objective, validation), session, progress, model);
    }

    [Fact]
    public void LossFallsOnATinyModelAndKilledRunsResumeBitForBit()
    {
        var (result, session, progress, model) = Train(Config("reference", 12));
        using var _ = model;
        Assert.Equal(12, result.Steps);
        Assert.Contains(progress.Warnings, w => w.Contains("broken.jpg"));
        double first = progress.Steps.Take(4).Average(s => s.Loss), last = progress.Steps.TakeLast(4).Average(s => s.Loss);
        Assert.True(last < 0.7 * first, $"loss {first} → {last}");
        Assert.True(File.Exists(Path.Combine(_dir, "reference", "adapter.safetensors")));

        var killed = Config("killed", 12);
        Assert.Throws<SimulatedKill>(() => Train(killed, crashAt: 5).Model.Dispose());
        var (resumed, session2, progress2, model2) = Train(killed with { Resume = "latest" });
        using var __ = model2;
        Assert.Equal(12, resumed.Steps);
        Assert.Contains(progress2.Infos, m => m.Contains("step-000004"));
        var a = session.ParameterGroups[0].Parameters;
        var b = session2.ParameterGroups[0].Parameters;
        for (int i = 0; i < a.Count; i++) Bits.AssertIdentical(b[i].Parameter, a[i].Parameter, a[i].Name);
    }

    [Fact]
    public void PriorPreservationGeneratesClassImagesOnceAndValidationWritesImages()
    {
        using var model = EmbeddedDefaultModel.CreateUntrained();
        var config = Config("prior", 4) with
        {
            ClassPrompt = "a photo of dog", ClassImages = Path.Combine(_dir, "class"), NumClassImages = 3, PriorWeight = 0.7,
            ValidationPrompts = new EquatableList<string>(["sks dog on a beach"]), ValidationSeeds = new EquatableList<long>([1, 2]), ValidateEvery = 2,
        };
        var validation = new PipelineValidationSampler(model, config.ValidationPrompts, config.EffectiveValidationSeeds, config.Resolution, steps: 2, trained: "lora rank 4");
        var (result, _, progress, m) = Train(config, validation: validation, classes: new PipelineClassImageSampler(model, config.Resolution, steps: 2, guidance: 6));
        string modelPairs = (model.ShortHash is { } hash ? $"Model hash: {hash}, " : "") + $"Model: {model.Name}";
        m.Dispose();
        Assert.Equal(4, result.Steps);
        Assert.Equal(3, Directory.GetFiles(config.ClassImages!, "class-*.png").Length);
        Assert.Contains("class images 3/3", progress.Infos);
        var decoded = ImageLoader.Load(Path.Combine(config.ClassImages!, "class-00000.png"));
        Assert.Equal((64, 64), (decoded.Width, decoded.Height));
        // A1111's parameters line, sampler included (the model's own scheduler: the untrained toy model keeps SD 1.x's PNDM).
        var classSeed = PngText.Get(PngText.Read(Path.Combine(config.ClassImages!, "class-00000.png")), "parameters")!.Split(", Seed: ")[1].Split(',')[0];
        Assert.Equal($"a photo of dog\nSteps: 2, Sampler: PLMS, CFG scale: 6, Seed: {classSeed}, Size: 64x64, {modelPairs}, Version: dpeft",
            PngText.Get(PngText.Read(Path.Combine(config.ClassImages!, "class-00000.png")), "parameters"));
        foreach (var step in new[] { 2, 4 })
            foreach (var seed in new[] { 1, 2 })
            {
                var png = Path.Combine(config.Out, "validation", PipelineValidationSampler.FileName(step, 0, seed));
                Assert.True(File.Exists(png));
                Assert.Equal($"sks dog on a beach\nSteps: 2, Sampler: PLMS, CFG scale: {model.DefaultGuidanceScale.ToString(System.Globalization.CultureInfo.InvariantCulture)}, Seed: {seed}, Size: 64x64, {modelPairs}, " +
                             $"Training step: {step}, Trained: lora rank 4, Version: dpeft", PngText.Get(PngText.Read(png), "parameters"));
            }

        var again = new FakeClassSampler();
        Assert.Equal(0, ClassImages.Generate(config, ImageLoaderDecoder.Instance, again, 2)); // generated once
    }
}
