using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.DreamBooth.Checkpoints;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>--ema-decay: the trainer's exponential moving average of the trained weights (diffusers' EMAModel).</summary>
public sealed class EmaWeightsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-ema-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private TrainConfig Config(string run, int steps = 12, double? ema = 0.8) => new()
    {
        Model = "toy", Images = "toy", Prompt = "toy", Out = Path.Combine(_dir, run), Steps = steps, Lr = 0.05, Batch = 3,
        CheckpointEvery = 5, Keep = 0, Seed = 17, LrScheduler = LrScheduleKind.Cosine, LrWarmupSteps = 2, PlotEvery = 100, EmaDecay = ema,
    };

    /// <summary>Records the trained weights after every step (the progress report comes after the step and the average's update).</summary>
    private static (TrainResult Result, List<float[]> Weights, RecordingProgress Progress) Train(TrainConfig c, ToyRegression toy,
                                                                                              RecordingValidation? validation = null)
    {
        var weights = new List<float[]>();
        var progress = new RecordingProgress(_ => weights.Add(Flat(toy)));
        using var trainer = new Trainer(c, c.Out, toy, toy, new DataOrder(ToyRegression.Items, c.Batch, c.Seed), progress, validation);
        var result = trainer.Run();
        if (!result.Interrupted) trainer.WriteResult();
        return (result, weights, progress);
    }

    private static float[] Flat(ToyRegression toy) => [.. toy.W.data<float>(), .. toy.B.data<float>()];

    /// <summary>diffusers' EMAModel.step in doubles: decay 0 at the first update, then min(max, (1 + n) / (10 + n)) before update n (0-based).</summary>
    private static double[] Average(float[] start, IEnumerable<float[]> weights, double maxDecay, int firstUpdate = 0)
    {
        var shadow = start.Select(x => (double)x).ToArray();
        int n = firstUpdate;
        foreach (var w in weights)
        {
            double d = n == 0 ? 0 : Math.Min(maxDecay, (1.0 + n) / (10.0 + n));
            for (int i = 0; i < shadow.Length; i++) shadow[i] = d * shadow[i] + (1 - d) * w[i];
            n++;
        }
        return shadow;
    }

    private static float[] Written(string run, string file = "adapter.safetensors")
    {
        using var f = SafetensorsFile.Open(Path.Combine(run, file));
        using var w = f.Read("w");
        using var b = f.Read("b");
        return [.. w.data<float>(), .. b.data<float>()];
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"{what}[{i}]: {actual[i]}, expected {expected[i]}");
    }

    [Fact]
    public void TheResultIsTheAverageOfEveryStepsWeightsAndTheCheckpointsKeepBoth()
    {
        var c = Config("avg");
        using var toy = new ToyRegression(c.Lr);
        var start = Flat(toy);
        var (_, weights, _) = Train(c, toy);
        Assert.Equal(12, weights.Count);
        var expected = Average(start, weights, 0.8);
        AssertClose(expected, Written(c.Out), "written result");
        AssertClose(expected, Flat(toy), "the model after the result is written");
        // The weights moved well away from their average: the test can tell the two apart.
        Assert.True(weights[^1].Zip(expected).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);

        var last = Path.Combine(c.Out, "checkpoints", "step-000012");
        Assert.Equal(weights[^1], Written(last, Trainer.ParametersFile));
        AssertClose(expected, Written(last, EmaWeights.FileName), "checkpoint's average");
        using var file = SafetensorsFile.Open(Path.Combine(last, EmaWeights.FileName));
        Assert.Equal("12", file.Metadata["ema_updates"]);
    }

    [Fact]
    public void AKilledRunResumesToTheSameAverageBitForBit()
    {
        var reference = Config("ref");
        using var a = new ToyRegression(reference.Lr);
        Train(reference, a);

        var killed = Config("killed");
        using (var b1 = new ToyRegression(killed.Lr) { CrashAtStep = 8 })
            Assert.Throws<SimulatedKill>(() => Train(killed, b1));
        using var b2 = new ToyRegression(killed.Lr);
        Train(killed with { Resume = "latest" }, b2);
        Assert.Equal(Written(reference.Out), Written(killed.Out));
        Assert.Equal(Written(Path.Combine(reference.Out, "checkpoints", "step-000012"), EmaWeights.FileName),
                     Written(Path.Combine(killed.Out, "checkpoints", "step-000012"), EmaWeights.FileName));
    }

    [Fact]
    public void AddedOnAResumeTheAverageStartsFromTheResumedWeights()
    {
        var c = Config("added", steps: 5, ema: null);
        using (var t = new ToyRegression(c.Lr)) Train(c, t);
        var atFive = Written(Path.Combine(c.Out, "checkpoints", "step-000005"), Trainer.ParametersFile);

        using var t2 = new ToyRegression(c.Lr);
        var resumed = c with { Steps = 12, Resume = "latest", EmaDecay = 0.8 };
        var (_, weights, progress) = Train(resumed, t2);
        Assert.Contains(progress.Infos, m => m.Contains("no weight average") && m.Contains("step 5"));
        Assert.Equal(7, weights.Count);
        AssertClose(Average(atFive, weights, 0.8), Written(resumed.Out), "average from step 5");

        // Dropped on a later resume: said, and the result is the trained weights.
        using var t3 = new ToyRegression(c.Lr);
        var (_, later, dropped) = Train(resumed with { Steps = 14, EmaDecay = null }, t3);
        Assert.Contains(dropped.Infos, m => m.Contains("holds a weight average") && m.Contains("trained weights"));
        Assert.Equal(later[^1], Written(resumed.Out));
    }

    [Fact]
    public void ValidationImagesSeeTheAverageAndTrainingGoesOnFromTheWeights()
    {
        var withValidation = Config("val") with { ValidateEvery = 4, ValidationPrompts = new(["p"]) };
        using var a = new ToyRegression(withValidation.Lr);
        var start = Flat(a);
        var validation = new RecordingValidation(a);
        var (_, weights, _) = Train(withValidation, a, validation);
        Assert.Equal(new long[] { 4, 8, 12 }, validation.Steps);
        foreach (var (step, seen) in validation.Steps.Zip(validation.Seen))
            AssertClose(Average(start, weights.Take((int)step), 0.8), seen, $"validation at step {step}");

        // Swapped back each time: the same run without validation trains the same weights.
        var plain = Config("plain");
        using var b = new ToyRegression(plain.Lr);
        var (_, plainWeights, _) = Train(plain, b);
        for (int i = 0; i < weights.Count; i++) Assert.Equal(plainWeights[i], weights[i]);
    }

    [Fact]
    public void TheDecayIsValidatedAndTheOptionIsResumeNeutral()
    {
        foreach (var bad in new[] { 0.0, 1.0, -0.5, double.NaN })
        {
            var ex = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(Config("x") with { EmaDecay = bad }));
            Assert.Contains("ema-decay", ex.Message);
        }
        TrainConfigYaml.Validate(Config("x") with { EmaDecay = 0.9999 });
        Assert.Equal(TrainConfigYaml.TrainingHash(Config("x", ema: null)), TrainConfigYaml.TrainingHash(Config("x", ema: 0.999)));
        var path = Path.Combine(_dir, "config.yaml");
        TrainConfigYaml.Save(Config("x", ema: 0.999), path);
        Assert.Equal(0.999, TrainConfigYaml.Load(path, validate: false).EmaDecay);
    }

    [Fact]
    public void TheWarmUpFollowsDiffusersAndTheAverageLivesInFp32()
    {
        using var w = new TorchSharp.Modules.Parameter(ones(3, dtype: ScalarType.BFloat16));
        using var ema = new EmaWeights([("w", w)], 0.95);
        Assert.Equal(0, ema.Decay);           // the first update takes the weights as they are
        using (no_grad()) w.fill_(3);
        ema.Update();
        Assert.Equal(3, ema.Averages.Single().Value[0].item<float>());
        Assert.Equal(2.0 / 11, ema.Decay, 12);  // (1 + 1) / (10 + 1)
        using (no_grad()) w.fill_(0.5);
        ema.Update();
        Assert.Equal(3 * 2.0 / 11 + 0.5 * 9.0 / 11, ema.Averages.Single().Value[0].item<float>(), 5);
        Assert.Equal(ScalarType.Float32, ema.Averages.Single().Value.dtype);

        // Copied into bf16 weights and restored, the fp32 average keeps its precision and the weights their values.
        var before = ema.Averages.Single().Value.clone();
        ema.CopyIntoWeights();
        Assert.Equal(ScalarType.BFloat16, w.dtype);
        Assert.True(w.eq(before.to_type(ScalarType.BFloat16)).all().item<bool>());
        ema.RestoreWeights();
        Assert.True(w.eq(0.5).all().item<bool>());
        Assert.True(ema.Averages.Single().Value.eq(before).all().item<bool>());
        Assert.Throws<InvalidOperationException>(() => ema.RestoreWeights());
        for (int i = 0; i < 500; i++) ema.Update();
        Assert.Equal(0.95, ema.Decay, 12);  // capped
        Assert.Throws<ArgumentOutOfRangeException>(() => new EmaWeights([("w", w)], 1));
    }

    internal sealed class RecordingValidation(ToyRegression toy) : IValidationSampler
    {
        public List<long> Steps { get; } = [];
        public List<float[]> Seen { get; } = [];
        public void Validate(long step, string outputDirectory, CancellationToken cancellationToken)
        {
            Steps.Add(step);
            Seen.Add(Flat(toy));
        }
    }
}
