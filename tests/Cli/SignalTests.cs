using System.Diagnostics;
using System.Runtime.InteropServices;
using DiffusionPeft.Cli;
using DiffusionPeft.Tests.DreamBooth;

namespace DiffusionPeft.Tests.Cli;

/// <summary>
/// SIGTERM (how Slurm, Kubernetes and systemd stop a job) stops `dpeft train` as Ctrl-C does: a checkpoint of the
/// last finished step, exit 130, and a resume that ends where an uninterrupted run ends. The CLI runs in a child
/// process (this assembly started as `dotnet DiffusionPeft.Tests.dll dpeft ...`) so the signal reaches only it.
/// </summary>
public sealed class SignalTests : IDisposable
{
    public const string Mode = "dpeft";
    private const int SigTerm = 15;
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-signal-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private string[] Train(string run, long steps, params string[] more) =>
    [
        "train", "--images", AdapterSessionTests.SubjectImages(_dir), "--prompt", "a photo of sks ball", "--out", Path.Combine(_dir, run),
        "--method", "lora", "--rank", "2", "--alpha", "4", "--steps", steps.ToString(), "--lr", "5e-3", "--batch", "1",
        "--resolution", "64", "--seed", "7", "--checkpoint-every", "1000000", "--plot-every", "1000000", "--quiet", .. more,
    ];

    [Fact]
    public async Task SigTermSavesTheLastStepAndTheRunResumesToTheUninterruptedAdapter()
    {
        var run = Path.Combine(_dir, "run");
        using var child = Process.Start(new ProcessStartInfo("dotnet", [typeof(SignalTests).Assembly.Location, Mode, .. Train("run", 1_000_000)])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        })!;
        var stderr = child.StandardError.ReadToEndAsync();
        var stdout = child.StandardOutput.ReadToEndAsync();
        var log = Path.Combine(run, "log.jsonl");
        var waited = Stopwatch.StartNew();
        while (!(File.Exists(log) && LogLines(log) >= 3))
        {
            if (child.HasExited) Assert.Fail($"the child exited ({child.ExitCode}) before training: {await stderr}");
            Assert.True(waited.Elapsed < TimeSpan.FromMinutes(3), "no training step within 3 minutes");
            Thread.Sleep(20);
        }
        Assert.Equal(0, Kill(child.Id, SigTerm));
        if (!child.WaitForExit(TimeSpan.FromMinutes(1)))
        {
            child.Kill(entireProcessTree: true);
            Assert.Fail("SIGTERM did not stop the run within a minute");
        }

        string errors = await stderr, output = await stdout;
        Assert.True(child.ExitCode == 130, $"exit {child.ExitCode}: {errors}{output}");
        Assert.Contains("terminated (SIGTERM): saving a checkpoint", errors);
        long steps = LogLines(log);
        var checkpoints = Directory.GetDirectories(Path.Combine(run, "checkpoints")).Select(d => Path.GetFileName(d)!).ToArray();
        Assert.Equal([$"step-{steps:D6}"], checkpoints);   // the interruption's checkpoint: no periodic one is due
        Assert.InRange(steps, 3, 999_999);

        var resumed = Dpeft(Train("run", steps + 2, "--resume", "latest"));
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("resumed from", resumed.Err);
        var reference = Dpeft(Train("reference", steps + 2));
        Assert.True(reference.Code == 0, reference.Err);
        TensorAssert.SameSafetensors(Path.Combine(_dir, "reference", "adapter.safetensors"), Path.Combine(run, "adapter.safetensors"));
    }

    private static long LogLines(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n').Count(l => l.EndsWith('}'));
    }

    private static (int Code, string Out, string Err) Dpeft(string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
