using System.Text.Json;
using DiffusionPeft.DreamBooth.Checkpoints;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.Training;
using SkiaSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

internal sealed class RecordingProgress(Action<StepReport>? onStep = null) : ITrainingProgress
{
    public List<string> Infos { get; } = [];
    public List<string> Warnings { get; } = [];
    public List<StepReport> Steps { get; } = [];
    public void Info(string message) => Infos.Add(message);
    public void Warning(string message) => Warnings.Add(message);
    public void Step(StepReport report) { Steps.Add(report); onStep?.Invoke(report); }
}

public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-train-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private TrainConfig Config(string run, int steps = 12, int batch = 3, int accumulation = 1) => new()
    {
        Model = "toy", Images = "toy", Prompt = "toy", Out = Path.Combine(_dir, run), Steps = steps, Lr = 0.05, Batch = batch,
        GradAccumulation = accumulation, CheckpointEvery = 5, Keep = 0, Seed = 17, WeightDecay = 0.01, MaxGradNorm = 1.0,
        LrScheduler = LrScheduleKind.Cosine, LrWarmupSteps = 2, PlotEvery = 4,
    };

    private static TrainResult Train(TrainConfig c, ToyRegression objective, ITrainingProgress? progress = null, CancellationToken ct = default)
    {
        using var trainer = new Trainer(c, c.Out, objective, objective, new DataOrder(ToyRegression.Items, c.Batch, c.Seed), progress);
        return trainer.Run(ct);
    }

    [Fact]
    public void LossFallsAndTheRunFolderHasLogAndPlot()
    {
        var c = Config("falls", steps: 80, batch: 4) with { Lr = 0.1, LrScheduler = LrScheduleKind.Constant, PlotEvery = 20 };
        using var toy = new ToyRegression(c.Lr);
        var progress = new RecordingProgress();
        var result = Train(c, toy, progress);
        Assert.Equal(80, result.Steps);
        Assert.False(result.Interrupted);
        double first = progress.Steps.Take(5).Average(s => s.Loss), last = progress.Steps.TakeLast(5).Average(s => s.Loss);
        Assert.True(last < first / 20, $"loss {first} → {last}");
        Assert.Equal(Enumerable.Range(0, 81).Select(i => (long)i), toy.RampCalls); // 0 at start, then after every step

        var lines = File.ReadAllLines(Path.Combine(c.Out, TrainingLog.FileName));
        Assert.Equal(80, lines.Length);
        using var doc = JsonDocument.Parse(lines[9]);
        Assert.Equal(10, doc.RootElement.GetProperty("step").GetInt64());
        Assert.Equal(progress.Steps[9].Loss, doc.RootElement.GetProperty("loss").GetDouble());
        Assert.Equal(0.1, doc.RootElement.GetProperty("lr").GetDouble());
        foreach (var key in new[] { "grad_norm", "it_s", "elapsed_s", "eta_s", "epoch" }) Assert.True(doc.RootElement.TryGetProperty(key, out _), key);

        using var png = SKBitmap.Decode(Path.Combine(c.Out, LossPlot.FileName));
        Assert.Equal((900, 500), (png.Width, png.Height));
        Assert.Equal(new long[] { 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80 }, new CheckpointStore(Path.Combine(c.Out, "checkpoints")).List().Select(x => x.Step));
    }

    [Fact]
    public void KilledAndResumedRunEqualsTheUninterruptedOneBitForBit()
    {
        var reference = Config("ref");
        using var a = new ToyRegression(reference.Lr);
        Train(reference, a);

        var killed = Config("killed");
        using (var b1 = new ToyRegression(killed.Lr) { CrashAtStep = 8 }) // dies inside step 9, after checkpoint 5
            Assert.Throws<SimulatedKill>(() => Train(killed, b1));
        Assert.Equal(5, new CheckpointStore(Path.Combine(killed.Out, "checkpoints")).List().Last().Step);

        using var b2 = new ToyRegression(killed.Lr); // fresh objects, as a new process
        var progress = new RecordingProgress();
        var result = Train(killed with { Resume = "latest" }, b2, progress);
        Assert.Equal(12, result.Steps);
        Assert.Equal(5, b2.RampCalls[0]); // the ramp continues from the checkpoint
        Bits.AssertIdentical(b2.W, a.W, "w after kill and resume");
        Bits.AssertIdentical(b2.B, a.B, "b after kill and resume");
        Assert.Contains(progress.Infos, m => m.Contains("resumed from") && m.Contains("step-000005"));

        // The log reads as one run: steps 1..12 once each, with the reference's losses.
        var refLog = File.ReadAllLines(Path.Combine(reference.Out, TrainingLog.FileName)).Select(Loss).ToArray();
        var resumedLog = File.ReadAllLines(Path.Combine(killed.Out, TrainingLog.FileName)).Select(l => (Step(l), Loss(l))).ToArray();
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), resumedLog.Select(x => x.Item1));
        Assert.Equal(refLog, resumedLog.Select(x => x.Item2));
    }

    [Fact]
    public void ResumeWithDifferentTrainingSettingsIsRefused()
    {
        var c = Config("changed", steps: 5);
        using (var t = new ToyRegression(c.Lr)) Train(c, t);
        using var t2 = new ToyRegression(c.Lr);
        var ex = Assert.Throws<InvalidCheckpointException>(() => Train(c with { Steps = 8, Resume = "latest", Seed = 3 }, t2));
        Assert.Contains("step-000005", ex.Message);
        Assert.Contains("seed", ex.Message);
        using var t3 = new ToyRegression(c.Lr);
        Assert.Equal(8, Train(c with { Steps = 8, Resume = "latest" }, t3).Steps); // more steps is fine
    }

    [Fact]
    public void CtrlCSavesACheckpointAndTheRunContinuesExactly()
    {
        var reference = Config("ref-c");
        using var a = new ToyRegression(reference.Lr);
        Train(reference, a);

        var c = Config("cancelled");
        using var cts = new CancellationTokenSource();
        using (var b1 = new ToyRegression(c.Lr))
        {
            var result = Train(c, b1, new RecordingProgress(r => { if (r.Step == 7) cts.Cancel(); }), cts.Token);
            Assert.True(result.Interrupted);
            Assert.Equal(7, result.Steps);
            Assert.EndsWith("step-000007", result.LastCheckpoint);
        }
        using var b2 = new ToyRegression(c.Lr);
        Train(c with { Resume = "latest" }, b2);
        Bits.AssertIdentical(b2.W, a.W, "w after Ctrl-C and resume");
        Bits.AssertIdentical(b2.B, a.B, "b after Ctrl-C and resume");
    }

    [Fact]
    public void CtrlCBeforeTheFirstStepWritesNothing()
    {
        var c = Config("early");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        using var t = new ToyRegression(c.Lr);
        var result = Train(c, t, ct: cts.Token);
        Assert.True(result.Interrupted);
        Assert.Equal(0, result.Steps);
        Assert.Null(result.LastCheckpoint);
        Assert.Empty(new CheckpointStore(Path.Combine(c.Out, "checkpoints")).List());
    }

    [Fact]
    public void NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint()
    {
        var c = Config("nan");
        using var t = new ToyRegression(c.Lr) { NanAtStep = 6 }; // the 7th step
        var progress = new RecordingProgress();
        var ex = Assert.Throws<NonFiniteLossException>(() => Train(c, t, progress));
        Assert.Equal(7, ex.Step);
        Assert.Contains("step 7: the loss is NaN", ex.Message);
        Assert.Contains("step-000005", ex.Message);
        Assert.Single(progress.Warnings);
        var store = new CheckpointStore(Path.Combine(c.Out, "checkpoints"));
        Assert.Equal(new long[] { 5 }, store.List().Select(x => x.Step));
        Assert.False(t.W.isnan().any().item<bool>()); // no optimizer step with the bad gradient
    }

    [Fact]
    public void AccumulationMatchesOneLargeBatch()
    {
        // 4 items: one batch of 4, or two micro-batches of 2 covering the same epoch, give the same update.
        var big = Config("big", steps: 6, batch: 4) with { LrScheduler = LrScheduleKind.Constant };
        var small = Config("small", steps: 6, batch: 2, accumulation: 2) with { LrScheduler = LrScheduleKind.Constant };
        using var a = new ToyRegression(big.Lr, noise: 0);
        using var b = new ToyRegression(small.Lr, noise: 0);
        foreach (var (cfg, toy) in new[] { (big, a), (small, b) })
        {
            using var trainer = new Trainer(cfg, cfg.Out, toy, toy, new DataOrder(4, cfg.Batch, cfg.Seed));
            trainer.Run();
        }
        Assert.True(a.W.abs().sum().item<float>() > 0.1f);
        TensorAssert.Close(b.W, a.W, 1e-6, 1e-5, "w with accumulation");
        TensorAssert.Close(b.B, a.B, 1e-6, 1e-5, "b with accumulation");
    }

    private static long Step(string line) { using var d = JsonDocument.Parse(line); return d.RootElement.GetProperty("step").GetInt64(); }
    private static double Loss(string line) { using var d = JsonDocument.Parse(line); return d.RootElement.GetProperty("loss").GetDouble(); }

    /// <summary>
    /// Stage settings (JSON): a checkpoint whose hash differs only because a setting became resume-neutral resumes; one
    /// whose trajectory-shaping setting differs is refused, naming it.
    /// </summary>
    [Fact]
    public void JsonSettingsResumeWhenOnlyNeutralSettingsDiffer()
    {
        var loop = Config("json").Loop with { Steps = 6, CheckpointEvery = 3, Resume = "latest" };
        var dir = Path.Combine(_dir, "json");
        using (var t = new ToyRegression(loop.Lr) { CrashAtStep = 4 })
        using (var trainer = new Trainer(loop, JsonRunSettings.Of(new { Steps = 6, Width = 8 }), dir, t, t, new DataOrder(ToyRegression.Items, 3, loop.Seed)))
            Assert.Throws<SimulatedKill>(() => trainer.Run());
        using (var t = new ToyRegression(loop.Lr))
        using (var trainer = new Trainer(loop, JsonRunSettings.Of(new { Steps = 9, Width = 8 }, ["Steps"]), dir, t, t, new DataOrder(ToyRegression.Items, 3, loop.Seed)))
            Assert.Equal(6, trainer.Run().Steps);
        using var t2 = new ToyRegression(loop.Lr);
        using var refused = new Trainer(loop with { Steps = 9 }, JsonRunSettings.Of(new { Steps = 9, Width = 16 }, ["Steps"]), dir, t2, t2, new DataOrder(ToyRegression.Items, 3, loop.Seed));
        Assert.Contains("Width", Assert.Throws<InvalidCheckpointException>(() => refused.Run()).Message);
    }

    /// <summary>Checkpoints written before the file was renamed hold adapter.safetensors: they resume to the same end.</summary>
    [Fact]
    public void CheckpointsWithTheOldParameterFileNameResume()
    {
        var c = Config("reference", steps: 8);
        using var reference = new ToyRegression(c.Lr);
        Train(c, reference);
        var old = Config("old", steps: 8);
        using (var killed = new ToyRegression(c.Lr) { CrashAtStep = 6 }) Assert.Throws<SimulatedKill>(() => Train(old, killed));
        var step5 = Path.Combine(old.Out, "checkpoints", "step-000005");
        File.Move(Path.Combine(step5, Trainer.ParametersFile), Path.Combine(step5, "adapter.safetensors"));
        using var resumed = new ToyRegression(c.Lr);
        Assert.Equal(8, Train(old with { Resume = "latest" }, resumed).Steps);
        Assert.True(resumed.W.eq(reference.W).all().item<bool>() && resumed.B.eq(reference.B).all().item<bool>(), "resumed from the old file name: same parameters");
    }
}

public sealed class TrainingLogAndRestartTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-log-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void ResumingDropsLaterAndTruncatedLines()
    {
        var path = Path.Combine(_dir, TrainingLog.FileName);
        File.WriteAllText(path, "{\"step\":1,\"loss\":0.5}\n{\"step\":2,\"loss\":0.25}\n{\"step\":3,\"loss\":0.125}\n{\"step\":4,\"lo");
        using (var log = new TrainingLog(path, resumedStep: 2))
        {
            Assert.Equal(new[] { (1L, 0.5), (2L, 0.25) }, log.Losses);
            log.Append(new StepReport(3, 10, 0, 0.2, 1e-4, 0.9, 2.5, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(7)));
        }
        var lines = File.ReadAllLines(path);
        Assert.Equal(3, lines.Length);
        Assert.Equal("{\"step\":3,\"epoch\":0,\"loss\":0.2,\"lr\":0.0001,\"grad_norm\":0.9,\"it_s\":2.5,\"elapsed_s\":3,\"eta_s\":7}", lines[2]);
    }

    [Fact]
    public void SmoothingIsABiasCorrectedEma()
    {
        var s = LossPlot.Smooth([1.0, 0.0, double.NaN], beta: 0.5);
        Assert.Equal(1.0, s[0], 12);
        Assert.Equal(0.25 / 0.75, s[1], 12); // (0.5·0.5 + 0.5·0) / (1 − 0.5²)
        Assert.Equal(s[1], s[2]);            // a non-finite loss holds the curve
    }

    [Fact]
    public void AFreshRunRefusesAFolderWithAnotherRunsCheckpoints()
    {
        var c = new TrainConfig { Model = "toy", Images = "toy", Prompt = "toy", Out = Path.Combine(_dir, "run"), Steps = 3, Lr = 0.05, CheckpointEvery = 0, Batch = 2 };
        using (var t = new ToyRegression(c.Lr))
        using (var trainer = new Trainer(c, c.Out, t, t, new DataOrder(ToyRegression.Items, c.Batch, c.Seed)))
            trainer.Run();
        using var t2 = new ToyRegression(c.Lr);
        using var again = new Trainer(c with { Steps = 5 }, c.Out, t2, t2, new DataOrder(ToyRegression.Items, c.Batch, c.Seed));
        var ex = Assert.Throws<InvalidCheckpointException>(() => again.Run());
        Assert.Contains("step-000003", ex.Message);
        Assert.Contains("--resume latest", ex.Message);
    }
}

public sealed class ValidationCancellationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-val-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private sealed class CancellingValidation(CancellationTokenSource cts) : IValidationSampler
    {
        public List<long> Steps { get; } = [];
        public void Validate(long step, string outputDirectory, CancellationToken cancellationToken)
        {
            Steps.Add(step);
            if (step == 4) { cts.Cancel(); cancellationToken.ThrowIfCancellationRequested(); }
        }
    }

    [Fact]
    public void CtrlCDuringValidationSavesTheStepAndStops()
    {
        var c = new TrainConfig
        {
            Model = "toy", Images = "toy", Prompt = "toy", Out = Path.Combine(_dir, "run"), Steps = 10, Lr = 0.05, Batch = 2,
            CheckpointEvery = 3, ValidateEvery = 2, ValidationPrompts = new EquatableList<string>(["p"]),
        };
        using var cts = new CancellationTokenSource();
        var validation = new CancellingValidation(cts);
        using var toy = new ToyRegression(c.Lr);
        using var trainer = new Trainer(c, c.Out, toy, toy, new DataOrder(ToyRegression.Items, c.Batch, c.Seed), validation: validation);
        var result = trainer.Run(cts.Token);
        Assert.True(result.Interrupted);
        Assert.Equal(4, result.Steps);
        Assert.Equal(new long[] { 2, 4 }, validation.Steps);
        Assert.Equal(new long[] { 3, 4 }, new CheckpointStore(Path.Combine(c.Out, "checkpoints")).List().Select(x => x.Step));
    }
}
