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
/// loads), then per run: loads the base model, generates missing class images, injects the adapters, trains and
/// writes RUN/adapter.safetensors and RUN/adapter.kohya.safetensors. Ctrl-C saves a checkpoint and exits 130;
/// a non-finite loss stops with exit 1 and keeps the last good checkpoint.
/// </summary>
public static class TrainRunner
{
    /// <summary>The --model value meaning the embedded tiny default (untrained).</summary>
    public const string EmbeddedModel = "embedded";

    public const int Interrupted = 130;

    public static int Run(TrainJob job, TextWriter output, TextWriter error)
    {
        var flags = job.Flags.ToList();
        var fileConfig = job.ConfigPath is null ? new TrainConfig() : TrainConfigYaml.Load(job.ConfigPath, validate: false);
        if (!flags.Any(f => f.Key == "model") && string.IsNullOrWhiteSpace(fileConfig.Model)) flags.Add(new("model", EmbeddedModel));

        var configs = job.SubjectsManifest is null
            ? [DreamBoothRun.Resolve(job.ConfigPath, flags)]
            : DreamBoothRun.ResolveSubjects(job.ConfigPath, flags, job.SubjectsManifest, job.Shard).Select(p => p.Config).ToList();
        if (configs.Count == 0)
        {
            output.WriteLine($"shard {job.Shard} owns no subjects of {job.SubjectsManifest}; nothing to do.");
            return 0;
        }
        foreach (var c in configs)
        {
            TorchOptions.ParseDevice(c.Device);
            TorchOptions.CheckDType(c.DType);
            if (!IsEmbedded(c.Model) && !File.Exists(c.Model) && !Directory.Exists(c.Model))
                throw new FileNotFoundException($"--model {c.Model}: no such model folder or checkpoint file.");
        }

        var progress = new CliTrainingProgress(new ProgressLine(error, "steps", job.Quiet));
        var runs = configs.Select(c => new DreamBoothRun(c, ImageLoaderDecoder.Instance, progress)).ToList();
        foreach (var run in runs) run.PrepareData();

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
            error.WriteLine("\ninterrupted: saving a checkpoint (resume with --resume latest)...");
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            foreach (var run in runs)
            {
                if (runs.Count > 1) output.WriteLine($"== {run.RunDirectory}");
                var result = Train(run, progress, output, error, cancel.Token);
                if (result is null) return 1;
                if (result.Interrupted) return Interrupted;
            }
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>One run on a freshly loaded model; null when the loss went non-finite (already reported).</summary>
    public static TrainResult? Train(DreamBoothRun run, ITrainingProgress progress, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var config = run.Config;
        var device = TorchOptions.ParseDevice(config.Device);
        var dtype = TorchOptions.ParseDType(config.DType);
        if (CudaReproducibility.ForTraining(device) is { } reproducibility) progress.Info(reproducibility);
        using var model = IsEmbedded(config.Model) ? EmbeddedDefaultModel.Create(device, dtype)
            : StableDiffusionLoader.Load(config.Model, dtype, device, configsFrom: config.ConfigsFrom, tokenizerDir: config.Tokenizer);
        if (model.IsEmbeddedDefault)
            error.WriteLine($"note: no --model given: training the embedded default '{model.Name}'. It is tiny and UNTRAINED: the adapter will not give real images. Pass --model DIR|FILE.");

        run.PrepareClassImages(new PipelineClassImageSampler(model, config.Resolution), config.Batch, cancellationToken);
        var adapters = new AdapterSession(model, config);
        progress.Info($"{config.Method.ToString().ToLowerInvariant()} rank {config.Rank}: " + string.Join("; ", adapters.Reports.Select(r => r.ToString().Split('\n')[0])));
        IValidationSampler? validation = config.ValidateEvery > 0
            ? new PipelineValidationSampler(model, config.ValidationPrompts, config.EffectiveValidationSeeds, config.Resolution)
            : null;
        using var training = new StableDiffusionTraining(run, model, adapters, progress.Warning);
        try
        {
            var result = run.Train(training.Objective, validation, cancellationToken: cancellationToken);
            if (!result.Interrupted)
                output.WriteLine($"adapter written to {Path.Combine(run.RunDirectory, AdapterSession.FinalFile)} (kohya: {AdapterSession.KohyaFile}); final loss {result.LastLoss:F4}");
            return result;
        }
        catch (NonFiniteLossException)
        {
            return null;   // the trainer has printed which step and the last good checkpoint
        }
    }

    public static bool IsEmbedded(string model) => model.Trim().Equals(EmbeddedModel, StringComparison.OrdinalIgnoreCase);

    private sealed class CliTrainingProgress(ProgressLine line) : ITrainingProgress
    {
        private long _offset = -1;

        public void Info(string message) => line.Message(message);
        public void Warning(string message) => line.Message($"warning: {message}");

        public void Step(StepReport report)
        {
            if (_offset < 0 || report.Step <= _offset)
            {
                _offset = report.Step - 1;
                line.Start((int)(report.TotalSteps - _offset));
            }
            line.Report((int)(report.Step - _offset), $"step {report.Step}/{report.TotalSteps} | loss {report.Loss:F4} | lr {report.LearningRate:G3}");
        }
    }
}
