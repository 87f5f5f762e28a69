using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Platform;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Training;

namespace DiffusionPeft.Cli.Commands;

/// <summary>
/// Runs `dpeft train`: resolves the config(s), checks every instance folder (bad folders fail before any model
/// loads), then trains each run through the library's <see cref="DreamBoothRun"/>. Ctrl-C saves a checkpoint and
/// exits 130; a non-finite loss stops with exit 1 and keeps the last good checkpoint.
/// </summary>
public static class TrainRunner
{
    public const int Interrupted = 130;

    /// <summary>
    /// The run configs of a `dpeft train` invocation: the config file overridden by the flags, one per subject with a
    /// subjects manifest. No --model is the embedded toy model, whose missing keys take <see cref="TrainConfig.EmbeddedModelDefaults"/>.
    /// </summary>
    public static IReadOnlyList<TrainConfig> ResolveConfigs(TrainJob job)
    {
        var flags = job.Flags.ToList();
        var fileConfig = job.ConfigPath is null ? new TrainConfig() : TrainConfigYaml.Load(job.ConfigPath, validate: false);
        if (!flags.Any(f => f.Key == "model") && string.IsNullOrWhiteSpace(fileConfig.Model)) flags.Add(new("model", EmbeddedDefaultModel.Keyword));
        var model = flags.LastOrDefault(f => f.Key == "model").Value ?? fileConfig.Model;
        // On the embedded toy model, what the file and the flags leave out comes from the DreamBooth table's evidence.
        var defaults = model == EmbeddedDefaultModel.Keyword ? TrainConfig.EmbeddedModelDefaults : null;

        return job.SubjectsManifest is null
            ? [DreamBoothRun.Resolve(job.ConfigPath, flags, defaults)]
            : DreamBoothRun.ResolveSubjects(job.ConfigPath, flags, job.SubjectsManifest, job.Shard, defaults).Select(p => p.Config).ToList();
    }

    public static int Run(TrainJob job, TextWriter output, TextWriter error)
    {
        var configs = ResolveConfigs(job);
        if (configs.Count == 0)
        {
            output.WriteLine($"shard {job.Shard} owns no subjects of {job.SubjectsManifest}; nothing to do.");
            return 0;
        }
        foreach (var c in configs)
        {
            TorchOptions.ParseDevice(c.Device);
            TorchOptions.CheckDType(c.DType);
            ModelArguments.Check(c.Model);
        }

        // Every instance folder is scanned before any model loads: a bad folder fails in seconds.
        var progress = new CliTrainingProgress(new ProgressLine(error, "steps", job.Quiet));
        var runs = configs.Select(c => new DreamBoothRun(c, progress: progress)).ToList();
        foreach (var run in runs) run.PrepareData();

        using var ctrlC = new ConsoleCancellation(error, "saving a checkpoint (resume with --resume latest)...");
        foreach (var run in runs)
        {
            if (runs.Count > 1) output.WriteLine($"== {run.RunDirectory}");
            TrainResult result;
            try { result = run.Train(cancellationToken: ctrlC.Token); }
            catch (NonFiniteLossException) { return 1; }   // the trainer has printed which step and the last good checkpoint
            if (result.Interrupted) return Interrupted;
            output.WriteLine(run.Config.Mode == TrainingMode.Full
                ? $"model written to {Path.Combine(run.RunDirectory, FullFineTuneTarget.ModelFolder)} (a diffusers folder: dpeft generate --model); final loss {result.LastLoss:F4}"
                : $"adapter written to {Path.Combine(run.RunDirectory, AdapterSession.FinalFile)} (kohya: {AdapterSession.KohyaFile}); final loss {result.LastLoss:F4}");
        }
        return 0;
    }
}
