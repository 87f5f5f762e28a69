using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>`--mode full`: every UNet weight trains on per-image captions, the result is a diffusers folder that loads back.</summary>
public sealed class FullFineTuneTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-full-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string CaptionedFolder(bool captions = true) =>
        CaptionedSquares.Write(Path.Combine(_dir, captions ? "captioned" : "bare"), captions, longLastCaption: true);

    private TrainConfig Config(string run, string images) => new()
    {
        Model = EmbeddedDefaultModel.UntrainedKeyword, Images = images, Out = Path.Combine(_dir, run), Mode = TrainingMode.Full, Resolution = 64, Steps = 12,
        Lr = 1e-3, Batch = 2, Seed = 5, CheckpointEvery = 6, Keep = 0, CaptionDropout = 0.25, SaveDType = SaveDType.Bf16, PlotEvery = 100,
    };

    [Fact]
    public void TrainsEveryUNetWeightOnItsCaptionsAndWritesAFolderThatLoads()
    {
        var config = Config("full", CaptionedFolder());
        var progress = new RecordingProgress();
        using var model = EmbeddedDefaultModel.CreateUntrained();
        var initial = model.Unet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var run = new DreamBoothRun(config, progress: progress);
        var data = run.PrepareData();
        Assert.Equal(["a red square on the left", "a blue square on the left", "a red square on the right"], data.Images.Take(3).Select(i => i.Caption));
        var result = run.Train(model);
        Assert.Equal(12, result.Steps);
        Assert.Null(run.Adapters);
        Assert.Contains(progress.Warnings, w => w.Contains("1 training caption(s) are longer") && w.Contains("d.png"));
        double first = progress.Steps.Take(3).Average(s => s.Loss), last = progress.Steps.TakeLast(3).Average(s => s.Loss);
        Assert.True(last < first, $"loss {first} → {last}");
        int changed = model.Unet.state_dict().Count(kv => !kv.Value.eq(initial[kv.Key]).all().item<bool>());
        Assert.True(changed > model.Unet.state_dict().Count * 9 / 10, $"only {changed} UNet tensors changed");

        var folder = Path.Combine(config.Out, FullFineTuneTarget.ModelFolder);
        using var loaded = StableDiffusionLoader.Load(folder);
        foreach (var (key, value) in model.Unet.state_dict())
            Assert.True((loaded.Unet.state_dict()[key] - value.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)).abs().max().item<float>() == 0, $"{key} as written");
        foreach (var (key, value) in model.TextEncoder.state_dict())
            Assert.True(loaded.TextEncoder.state_dict()[key].eq(value.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)).all().item<bool>(), $"text encoder {key} unchanged");
        Assert.Equal(model.Tokenizer.EncodeForModel("a red square").InputIds, loaded.Tokenizer.EncodeForModel("a red square").InputIds);
    }

    [Fact]
    public void AFolderWithoutCaptionsAndWithoutAPromptIsRefusedBeforeAnyModelLoads()
    {
        var ex = Assert.Throws<NoTrainingImagesException>(() => new DreamBoothRun(Config("bare", CaptionedFolder(captions: false))).PrepareData());
        Assert.Contains("4 of 4 images have no caption", ex.Message);
        Assert.Contains("a.png", ex.Message);
        Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(Config("x", "imgs") with { Mode = TrainingMode.Adapter }));
        var fp16 = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(Config("x", "imgs") with { DType = "fp16" }));
        Assert.Contains("fp32 master weights", fp16.Message);
        Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(Config("x", "imgs") with { CaptionDropout = 1 }));
    }

    /// <summary>
    /// --dtype bf16: the forward and backward run in bf16, while the optimizer, the checkpoints and the written model hold
    /// fp32 master weights (weights a bf16 model could not hold); with two micro-batches a step, six steps, a new process,
    /// six more end on the same masters as twelve in one go.
    /// </summary>
    [Fact]
    public void Bf16TrainsFp32MasterWeightsAndResumesExactly()
    {
        var images = CaptionedFolder();
        var config = Config("mixed", images) with { DType = "bf16", SaveDType = SaveDType.Fp32, GradAccumulation = 2 };
        var progress = new RecordingProgress();
        var result = new DreamBoothRun(config, progress: progress).Train();
        Assert.Equal(12, result.Steps);
        Assert.Contains(progress.Infos, m => m.Contains("full fine-tuning") && m.Contains("bf16 compute on fp32 master weights"));
        double first = progress.Steps.Take(3).Average(s => s.Loss), last = progress.Steps.TakeLast(3).Average(s => s.Loss);
        Assert.True(last < first, $"loss {first} → {last}");

        Dictionary<string, Tensor> Masters(string run, int step)
        {
            using var file = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(Path.Combine(_dir, run, "checkpoints", $"step-{step:D6}", "parameters.safetensors"));
            return file.Names.ToDictionary(k => k, k => file.Read(k));
        }
        var masters = Masters("mixed", 12);
        Assert.All(masters.Values, t => Assert.Equal(ScalarType.Float32, t.dtype));
        using (var written = StableDiffusionLoader.Load(Path.Combine(config.Out, FullFineTuneTarget.ModelFolder)))
        {
            var unet = written.Unet.state_dict();
            Assert.All(masters, kv => Assert.True(unet[kv.Key["unet.".Length..]].eq(kv.Value).all().item<bool>(), $"{kv.Key} as written"));
            long finer = masters.Values.Sum(t => t.ne(t.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)).sum().item<long>());
            Assert.True(finer > masters.Values.Sum(t => t.numel()) / 2, $"only {finer} written weights carry more than bf16 holds");
            // The untrained VAE and text encoder are written as loaded in fp32 (diffusers writes the original components), not as their bf16 rounding.
            using var original = StableDiffusionLoader.LoadOrEmbedded(config.Model, ScalarType.Float32);
            foreach (var (name, mine, theirs) in new[] { ("vae", written.Vae.state_dict(), original.Vae.state_dict()),
                         ("text_encoder", written.TextEncoder.state_dict(), original.TextEncoder.state_dict()) })
            {
                Assert.All(theirs, kv => Assert.True(mine[kv.Key].eq(kv.Value).all().item<bool>(), $"{name}.{kv.Key} as written"));
                Assert.Contains(theirs.Values, t => t.is_floating_point() && t.ne(t.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)).any().item<bool>());
            }
        }

        var halfway = Config("resumed", images) with { DType = "bf16", SaveDType = SaveDType.Fp32, GradAccumulation = 2, Steps = 6 };
        Assert.Equal(6, new DreamBoothRun(halfway).Train().Steps);
        Assert.Equal(12, new DreamBoothRun(halfway with { Steps = 12, Resume = "latest" }).Train().Steps);
        var resumed = Masters("resumed", 12);
        Assert.All(masters, kv => Assert.True(resumed[kv.Key].eq(kv.Value).all().item<bool>(), $"{kv.Key} after resuming"));
    }

    /// <summary>--ema-decay in mixed precision: the written model is the average of the fp32 masters (the last checkpoint's
    /// ema.safetensors), not the masters themselves, and the bf16 model the pipeline would sample holds it too.</summary>
    [Fact]
    public void TheWeightAverageIsTheWrittenModelInMixedPrecision()
    {
        var config = Config("ema", CaptionedFolder()) with { DType = "bf16", SaveDType = SaveDType.Fp32, EmaDecay = 0.9 };
        var run = new DreamBoothRun(config);
        using var model = EmbeddedDefaultModel.CreateUntrained(dtype: ScalarType.BFloat16);
        Assert.Equal(12, run.Train(model).Steps);
        var last = Path.Combine(config.Out, "checkpoints", "step-000012");
        using var average = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(Path.Combine(last, EmaWeights.FileName));
        using var masters = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(Path.Combine(last, Trainer.ParametersFile));
        using var written = StableDiffusionLoader.Load(Path.Combine(config.Out, FullFineTuneTarget.ModelFolder));
        var unet = written.Unet.state_dict();
        var inModel = model.Unet.state_dict();
        double apart = 0;
        foreach (var name in average.Names)
        {
            using var a = average.Read(name);
            using var m = masters.Read(name);
            Assert.True(unet[name["unet.".Length..]].eq(a).all().item<bool>(), $"{name} as written");
            Assert.True(inModel[name["unet.".Length..]].eq(a.to_type(ScalarType.BFloat16)).all().item<bool>(), $"{name} in the bf16 model");
            apart = Math.Max(apart, (a - m).abs().max().item<float>());
        }
        Assert.True(apart > 1e-5, $"the average is the masters ({apart})");
    }

    /// <summary>Validation images in mixed precision sample the average; the masters and the bf16 model get the trained
    /// weights back after, so the run trains exactly as one without validation.</summary>
    [Fact]
    public void ValidatingFromTheAverageLeavesMixedPrecisionTrainingUnchanged()
    {
        var images = CaptionedFolder();
        var plain = Config("plain", images) with { DType = "bf16", SaveDType = SaveDType.Fp32, EmaDecay = 0.9, Steps = 8 };
        var validated = plain with { Out = Path.Combine(_dir, "validated"), ValidateEvery = 4, ValidationPrompts = new(["a red square"]) };
        var a = new RecordingProgress();
        var b = new RecordingProgress();
        new DreamBoothRun(plain, progress: a).Train();
        new DreamBoothRun(validated, progress: b).Train();
        Assert.True(Directory.GetFiles(Path.Combine(validated.Out, "validation"), "*.png", SearchOption.AllDirectories).Length >= 2);
        Assert.Equal(a.Steps.Select(s => s.Loss), b.Steps.Select(s => s.Loss));
        using var x = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(Path.Combine(plain.Out, "checkpoints", "step-000008", Trainer.ParametersFile));
        using var y = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(Path.Combine(validated.Out, "checkpoints", "step-000008", Trainer.ParametersFile));
        foreach (var name in x.Names)
        {
            using var p = x.Read(name);
            using var q = y.Read(name);
            Assert.True(p.eq(q).all().item<bool>(), $"{name} after validating");
        }
    }

    /// <summary>The masters start from the fp32 weights they are given (a checkpoint's, not their bf16 rounding), and
    /// each micro-batch's bf16 gradient is summed into them in fp32.</summary>
    [Fact]
    public void MixedPrecisionMastersStartFromTheFp32WeightsAndSumGradientsInFp32()
    {
        using var scope = NewDisposeScope();
        using var bf16 = EmbeddedDefaultModel.CreateUntrained(dtype: ScalarType.BFloat16);
        using var fp32 = EmbeddedDefaultModel.CreateUntrained();
        var weights = fp32.Unet.named_parameters().ToDictionary(p => "unet." + p.name, p => (Tensor)p.parameter);
        using var target = new FullFineTuneTarget(bf16, Config("x", "imgs") with { DType = "bf16" }, weights);
        Assert.True(target.MixedPrecision);
        var masters = target.ParameterGroups.SelectMany(g => g.Parameters).ToList();
        Assert.All(masters, m => Assert.True(m.Parameter.eq(weights[m.Name]).all().item<bool>(), m.Name));
        Assert.Contains(masters, m => !weights[m.Name].eq(weights[m.Name].to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)).all().item<bool>());

        var (name, master) = masters.First(m => m.Name.EndsWith("conv_in.weight"));
        var weight = bf16.Unet.named_parameters().Single(p => "unet." + p.name == name).parameter;
        var g1 = full_like(weight, 1e-3f, dtype: ScalarType.BFloat16);
        var g2 = full_like(weight, 1.0f, dtype: ScalarType.BFloat16);
        weight.grad = g1.clone();
        target.AfterBackward();
        Assert.Equal(0f, weight.grad!.abs().max().to_type(ScalarType.Float32).item<float>());   // cleared for the next micro-batch
        weight.grad = g2.clone();
        target.AfterBackward();
        // 1 + 1e-3 summed in fp32 (in bf16, whose step at 1 is 2^-7, the 1e-3 would be lost)
        Assert.Equal(ScalarType.Float32, master.grad!.dtype);
        Assert.True((master.grad - (g1.to_type(ScalarType.Float32) + g2.to_type(ScalarType.Float32))).abs().max().item<float>() < 1e-7);
        Assert.True(master.grad.gt(1.0005f).all().item<bool>());
        target.OnOptimizerStep(1);
        Assert.True(weight.eq(master.to_type(ScalarType.BFloat16)).all().item<bool>());
    }

    /// <summary>The embedded default written as a diffusers folder and read back generates the same image.</summary>
    [Fact]
    public void DiffusersFolderWriterRoundTripsTheEmbeddedModel()
    {
        using var model = EmbeddedDefaultModel.CreateUntrained();
        var folder = Path.Combine(_dir, "written");
        DiffusersFolderWriter.Write(model, folder);
        using var loaded = StableDiffusionLoader.Load(folder);
        Assert.Equal(model.SchedulerConfig with { Source = "" }, loaded.SchedulerConfig with { Source = "" });
        var call = new PipelineCall { Prompts = ["a red circle"], Seeds = [3], Width = 64, Height = 64, Steps = 3, GuidanceScale = 5 };
        using var s1 = model.CreateScheduler("default");
        using var s2 = loaded.CreateScheduler("default");
        using var a = new StableDiffusionPipeline(model, s1).Run(call);
        using var b = new StableDiffusionPipeline(loaded, s2).Run(call);
        Assert.True(a.Images.eq(b.Images).all().item<bool>(), "same image from the written folder");
        Assert.Throws<IOException>(() => DiffusersFolderWriter.Write(model, folder));
    }
}
