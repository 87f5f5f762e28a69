using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.Core.Imaging;
using static TorchSharp.torch;
using ConfigMethod = DiffusionPeft.Adapters.AdapterMethod;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>
/// The SD adapter session on the embedded tiny model at 64 px: every method learns a tiny subject (measured on a fixed
/// set of noise/timestep draws, so the comparison does not depend on which timesteps training happened to sample),
/// a bf16 base with fp32 adapters trains like fp32, the final files load back, and live tensors stay flat.
/// </summary>
public sealed class AdapterSessionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-session-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    internal static string SubjectImages(string root)
    {
        var dir = Path.Combine(root, "subject");
        if (Directory.Exists(dir)) return dir;
        Directory.CreateDirectory(dir);
        for (int k = 0; k < 2; k++)
        {
            const int w = 64, h = 64;
            var px = new byte[w * h * 3];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    bool inside = (x - 32) * (x - 32) + (y - 30 - 4 * k) * (y - 30 - 4 * k) < 300;
                    int i = (y * w + x) * 3;
                    px[i] = (byte)(inside ? 230 : 20);
                    px[i + 1] = (byte)(inside ? 40 : 60 + x);
                    px[i + 2] = (byte)(inside ? 30 : 200 - y);
                }
            PngWriter.Write(Path.Combine(dir, $"img{k}.png"), new RgbImage(w, h, px));
        }
        return dir;
    }

    private TrainConfig Config(string run, ConfigMethod method, int steps) => new()
    {
        Model = EmbeddedDefaultModel.UntrainedKeyword, Images = SubjectImages(_dir), Prompt = "a photo of sks ball", Out = Path.Combine(_dir, run), Resolution = 64,
        Method = method, Rank = 4, Steps = steps, Lr = 1e-2, Batch = 2, Seed = 5, CheckpointEvery = 0, Keep = 1, PlotEvery = 1000,
        SingLoraRampSteps = 5, WeightDecay = 0, DType = "fp32",   // thresholds set in fp32; auto would pick bf16 on an AMX CPU
    };

    /// <summary>Mean loss over fixed draws (a fresh RNG per draw), without gradients.</summary>
    private static double FixedDrawLoss(ITrainingObjective objective, int items)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        double sum = 0;
        const int draws = 4;
        for (int k = 0; k < draws; k++)
        {
            using var rng = new TrainingRng(1000 + k);
            sum += objective.Loss(new Batch(0, 0, 0, Enumerable.Range(0, items).ToArray()), rng).item<float>();
        }
        return sum / draws;
    }

    private static (double Before, double After, TrainResult Result, RecordingProgress Progress) TrainAndMeasure(TrainConfig config, Action<StepReport>? onStep = null)
    {
        using var model = EmbeddedDefaultModel.CreateUntrained(dtype: Diffusion.TorchOptions.ParseDType(config.DType));
        var progress = new RecordingProgress(onStep);
        var run = new DreamBoothRun(config, ImageLoaderDecoder.Instance, progress);
        run.PrepareData();
        var session = new AdapterSession(model, config);
        using var training = new StableDiffusionTraining(run, model, progress.Warning);
        double before = FixedDrawLoss(training.Objective, 2);
        var result = run.TrainWith(session, training.Objective);
        double after = FixedDrawLoss(training.Objective, 2);
        return (before, after, result, progress);
    }

    public static TheoryData<ConfigMethod> Methods => new(Enum.GetValues<ConfigMethod>());

    [Theory, MemberData(nameof(Methods))]
    public void LossFallsOnATinySubject(ConfigMethod method)
    {
        // LoRA+ trains B at 16 x lr: its base lr is lower so the B step matches the others.
        var config = Config($"fall-{method}", method, 16) with { Batch = 1, Lr = method == ConfigMethod.LoraPlus ? 3e-3 : 2e-2 };
        var (before, after, result, progress) = TrainAndMeasure(config);
        Assert.Equal(16, result.Steps);
        Assert.All(progress.Steps, s => Assert.True(double.IsFinite(s.Loss)));
        Assert.True(after < 0.9 * before, $"{method}: fixed-draw loss {before:F4} → {after:F4}");
        Assert.True(File.Exists(Path.Combine(_dir, $"fall-{method}", AdapterSession.FinalFile)));
        Assert.True(File.Exists(Path.Combine(_dir, $"fall-{method}", AdapterSession.KohyaFile)));
    }

    [Fact]
    public void SessionGroupsFreezeTheBaseAndLoraPlusScalesB()
    {
        using var model = EmbeddedDefaultModel.CreateUntrained();
        var config = Config("groups", ConfigMethod.LoraPlus, 1) with { TrainTextEncoder = true, TextEncoderLr = 3e-3, LoraPlusRatio = 8 };
        var session = new AdapterSession(model, config);
        Assert.Equal(["unet.A", "unet.B", "text_encoder.A", "text_encoder.B"], session.ParameterGroups.Select(g => g.Name));
        Assert.Equal([1e-2, 8e-2, 3e-3, 2.4e-2], session.ParameterGroups.Select(g => g.LearningRate), new ToleranceComparer(1e-12));
        Assert.All(session.ParameterGroups[0].Parameters, p => Assert.EndsWith(".lora_A", p.Name));
        Assert.All(session.ParameterGroups[1].Parameters, p => Assert.EndsWith(".lora_B", p.Name));
        Assert.Contains(session.ParameterGroups[0].Parameters, p => p.Name.StartsWith("unet.") && p.Name.Contains(".attn2.to_out.0."));
        Assert.Contains(session.ParameterGroups[2].Parameters, p => p.Name.Contains(".self_attn.out_proj."));
        var trainable = model.Unet.parameters().Concat(model.TextEncoder.parameters()).Concat(model.Vae.parameters()).Count(p => p.requires_grad);
        Assert.Equal(session.ParameterGroups.Sum(g => g.Parameters.Count), trainable);
        Assert.All(session.ParameterGroups.SelectMany(g => g.Parameters), p => Assert.Equal(ScalarType.Float32, p.Parameter.dtype));

        // SingLoRA: the ramp follows the absolute step (also on resume).
        using var model2 = EmbeddedDefaultModel.CreateUntrained();
        var sing = new AdapterSession(model2, Config("sing", ConfigMethod.SingLora, 1) with { SingLoraRampSteps = 10 });
        sing.OnOptimizerStep(7);
        Assert.All(sing.Layers.Cast<SingLoraLinear>(), l => Assert.Equal(0.7, l.Ramp, 12));
        sing.OnOptimizerStep(3);
        Assert.All(sing.Layers.Cast<SingLoraLinear>(), l => Assert.Equal(0.3, l.Ramp, 12));
    }

    [Fact]
    public void Bf16BaseWithFp32AdaptersTrainsLikeFp32AndTheAdapterLoadsAndChangesTheUNet()
    {
        var fp32 = TrainAndMeasure(Config("fp32", ConfigMethod.Dora, 10) with { Batch = 1, Lr = 2e-2 });
        var bf16 = TrainAndMeasure(Config("bf16", ConfigMethod.Dora, 10) with { Batch = 1, Lr = 2e-2, DType = "bf16" });
        Assert.All(bf16.Progress.Steps, s => Assert.True(double.IsFinite(s.Loss)));
        Assert.True(Math.Abs(bf16.Before - fp32.Before) < 0.03 * fp32.Before, $"initial loss bf16 {bf16.Before} vs fp32 {fp32.Before}");
        Assert.True(Math.Abs(bf16.After - fp32.After) < 0.1 * fp32.Before, $"final loss bf16 {bf16.After} vs fp32 {fp32.After} (start {fp32.Before})");
        Assert.True(bf16.After < 0.95 * bf16.Before, $"bf16 loss {bf16.Before} → {bf16.After}");

        // The final files load into a fresh model (ours and kohya's layout) and change the UNet's prediction the same way.
        using var model = EmbeddedDefaultModel.CreateUntrained();
        using var scope = NewDisposeScope();
        manual_seed(3);
        var latents = randn([1, 4, 8, 8]);
        var t = tensor(new long[] { 500 });
        var context = randn([1, 77, model.TextEncoder.Config.HiddenSize]) * 0.5;
        Tensor Predict() { using var _ = no_grad(); return model.Unet.forward(latents, t, context); }
        var plain = Predict();
        var components = new Dictionary<string, nn.Module> { ["unet"] = model.Unet, ["text_encoder"] = model.TextEncoder };
        var ours = LoraImporter.Load(Path.Combine(_dir, "fp32", AdapterSession.FinalFile), components);
        Assert.Equal("dpeft", ours.Format);
        var adapted = Predict();
        double change = (adapted - plain).abs().max().item<float>();
        Assert.True(change > 1e-3, $"the adapter changes the UNet output by {change}");
        foreach (var e in ours.Layers) e.Adapter.Enabled = false;
        TensorAssert.Close(Predict(), plain, 0, 0, "adapters disabled");
    }

    [Fact]
    public void LiveTensorCountStaysFlatOverManyTinySteps()
    {
        var counts = new List<long>();
        var config = Config("flat", ConfigMethod.SdsLora, 60) with { Batch = 1, PlotEvery = 20, CheckpointEvery = 20, Keep = 1 };
        TrainAndMeasure(config, onStep: s => { if (s.Step % 10 == 0) { GC.Collect(); GC.WaitForPendingFinalizers(); counts.Add(Tensor.TotalCount); } });
        Assert.Equal(6, counts.Count);
        // After warm-up (optimizer state, caches), the count must not grow with the step count.
        Assert.True(counts.Skip(1).Max() - counts[1] <= 2, $"live tensors at steps 10..60: {string.Join(", ", counts)}");
    }

    private sealed class ToleranceComparer(double tol) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tol;
        public int GetHashCode(double obj) => 0;
    }

    [Fact]
    public void SdsBasisOptionReachesTheLayers()
    {
        var config = new TrainConfig { Method = ConfigMethod.SdsLora, Rank = 2 };
        Assert.Equal(DiffusionPeft.Adapters.SdsBasis.Polar, config.AdapterOptions.SdsBasis);   // the default since docs/experiments/adapter-claims
        Assert.Equal(DiffusionPeft.Adapters.SdsBasis.Qr, (config with { SdsBasis = DiffusionPeft.Adapters.SdsBasis.Qr }).AdapterOptions.SdsBasis);
    }
}
