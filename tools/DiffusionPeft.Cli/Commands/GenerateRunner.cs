using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Schedulers;

namespace DiffusionPeft.Cli.Commands;

public static class GenerateRunner
{
    public static int Run(GenerateJob job, TextWriter output, TextWriter error)
    {
        // Everything that can be checked without the model is checked first, so bad input fails in a second.
        var device = TorchOptions.ParseDevice(job.Device);
        var dtype = TorchOptions.ResolveDType(job.DType, device, m => error.WriteLine($"warning: {m}"));
        ModelArguments.Check(job.Model);
        // The model's native size and default guidance are only known once it is loaded; validate with stand-ins now, read again after.
        var prompts = ReadPrompts(WithModelDefaults(job, job.Model is null ? 64 : 512, GenerationConfig.StableDiffusionGuidanceScale));
        foreach (var p in prompts)
        {
            if (p.Sampler is not ("" or "default") && !SchedulerFactory.Names.Contains(p.Sampler) && !SchedulerFactory.ClassNames.Contains(p.Sampler))
                throw new ArgumentException($"unknown sampler '{p.Sampler}'. Valid samplers: default, {string.Join(", ", SchedulerFactory.Names)}.");
            foreach (var a in p.Adapters)
                if (!File.Exists(a.Path)) throw new FileNotFoundException($"--adapter {a.Path}: file not found.");
        }

        using var model = ModelArguments.Load(job.Model, dtype, device, error, "generating", job.Variant, job.ConfigsFrom, job.Tokenizer);
        if (job.Width is null || job.Height is null || job.GuidanceScale is null)
            prompts = ReadPrompts(WithModelDefaults(job, model.NativeResolution, model.DefaultGuidanceScale)); // per-line overrides still win

        var plan = new GenerationPlan(prompts, job.OutputDir);
        var progress = new CliGenerationProgress(new ProgressLine(error, "images", job.Quiet));
        var generator = new BatchGenerator(model) { ApplyAdapters = specs => ActiveAdapters.Apply(model, specs, progress.Warning) };
        using var ctrlC = new ConsoleCancellation(error, "finishing nothing more; images written so far are kept.");
        int written = generator.Run(plan, job.Shard, progress, ctrlC.Token);
        output.WriteLine($"{written} images written to {Path.GetFullPath(job.OutputDir)}" + (job.Shard.Count > 1 ? $" (shard {job.Shard})" : "") + ".");
        return 0;
    }

    private static GenerateJob WithModelDefaults(GenerateJob job, int native, double guidance) =>
        job with { Defaults = job.Defaults with { Width = job.Width ?? native, Height = job.Height ?? native, GuidanceScale = job.GuidanceScale ?? guidance } };

    internal static IReadOnlyList<GenerationOptions> ReadPrompts(GenerateJob job)
    {
        if (job.PromptFile is not null && !string.IsNullOrEmpty(job.Defaults.Prompt))
            throw new ArgumentException("give --prompt or --prompts, not both.");
        if (job.PromptFile is not null) return PromptFile.Read(job.PromptFile, job.Defaults);
        if (string.IsNullOrWhiteSpace(job.Defaults.Prompt)) throw new ArgumentException("give --prompt TEXT or --prompts FILE.");
        job.Defaults.Validate("command line");
        return [job.Defaults];
    }

    internal sealed class CliGenerationProgress(ProgressLine line) : IGenerationProgress
    {
        private int _done, _steps = 1, _inBatch = 1;

        public void Start(int pendingImages, int alreadyDone) => line.Start(pendingImages, alreadyDone);

        public void Step(int step, int steps)
        {
            _steps = steps;
            line.Report(_done, $"step {step}/{steps}", _done + (double)step / steps * _inBatch);
        }

        public void ImagesWritten(IReadOnlyList<PlannedImage> images, double secondsPerImage)
        {
            _done += images.Count;
            _inBatch = images.Count;
            line.Report(_done, $"last: {Path.GetFileName(Path.GetDirectoryName(images[^1].PngPath))}/{Path.GetFileName(images[^1].PngPath)}", force: true);
        }

        public void Warning(string message) => line.Message($"warning: {message}");
    }
}
