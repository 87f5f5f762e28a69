using System.Diagnostics;
using DiffusionPeft.DreamBooth.Checkpoints;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.Training;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>The child side: trains the toy regression in RUN_DIR (resuming its latest checkpoint), printing each step.</summary>
internal static class KillHarness
{
    public const string Mode = "dreambooth-train-toy";

    public static TrainConfig Config(string runDirectory) => new()
    {
        Model = "toy", Images = "toy", Prompt = "toy", Out = runDirectory, Steps = 40, Lr = 0.05, Batch = 3, Seed = 23,
        CheckpointEvery = 1, Keep = 2, Resume = "latest", LrScheduler = LrScheduleKind.Linear, LrWarmupSteps = 3, PlotEvery = 5,
    };

    public static int Run(string[] args)
    {
        var config = Config(args[0]);
        using var toy = new ToyRegression(config.Lr);
        using var trainer = new Trainer(config, config.Out, toy, toy, new DataOrder(ToyRegression.Items, config.Batch, config.Seed), new Printer());
        trainer.Run();
        return 0;
    }

    private sealed class Printer : ITrainingProgress
    {
        public void Info(string message) { }
        public void Warning(string message) { }
        public void Step(StepReport report) { Console.Out.WriteLine($"step {report.Step}"); Console.Out.Flush(); }
    }
}

public sealed class SigKillResumeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-kill-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void RunsKilledWithSigKillResumeToTheSameAdapterBitForBit()
    {
        var reference = KillHarness.Config(Path.Combine(_dir, "reference")) with { Resume = null };
        using var a = new ToyRegression(reference.Lr);
        using (var t = new Trainer(reference, reference.Out, a, a, new DataOrder(ToyRegression.Items, reference.Batch, reference.Seed))) t.Run();

        var run = Path.Combine(_dir, "killed");
        var random = new Random(4);
        var killedAt = new List<long>();
        foreach (int afterStep in new[] { 4, 11, 19, 27 })
        {
            using var child = Process.Start(new ProcessStartInfo("dotnet", [typeof(KillHarness).Assembly.Location, KillHarness.Mode, run])
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            })!;
            string? line;
            long last = 0;
            var seen = new List<string>();
            while ((line = child.StandardOutput.ReadLine()) is not null)
            {
                seen.Add(line);
                if (!line.StartsWith("step ")) continue;
                last = long.Parse(line["step ".Length..]);
                if (last >= afterStep) break;
            }
            Assert.True(line is not null, $"the child ended (exited: {child.HasExited}) before step {afterStep}: {string.Join(" | ", seen)}");
            Thread.Sleep(random.Next(0, 40)); // land anywhere in the step's checkpoint write or the next step
            child.Kill(entireProcessTree: true); // SIGKILL
            child.WaitForExit();
            killedAt.Add(last);
        }
        Assert.Equal(4, killedAt.Count);

        using var b = new ToyRegression(reference.Lr);
        var config = KillHarness.Config(run);
        using (var t = new Trainer(config, run, b, b, new DataOrder(ToyRegression.Items, config.Batch, config.Seed))) Assert.Equal(40, t.Run().Steps);
        Bits.AssertIdentical(b.W, a.W, "w after four SIGKILLs");
        Bits.AssertIdentical(b.B, a.B, "b after four SIGKILLs");
        var store = new CheckpointStore(Path.Combine(run, "checkpoints"));
        Assert.Equal(new long[] { 39, 40 }, store.List().Select(c => c.Step));
        Assert.Empty(Directory.EnumerateDirectories(store.Directory, ".*"));
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i),
                     File.ReadAllLines(Path.Combine(run, TrainingLog.FileName)).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()));
    }
}
