using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Pipelines;

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
        // The adapters prompts use (a prompt line's own replace --adapter's), each named where it came from.
        for (int i = 0; i < prompts.Count; i++)
            foreach (var a in prompts[i].Adapters.Where(a => !File.Exists(a.Path)))
                throw new FileNotFoundException(job.Defaults.Adapters.Contains(a) ? $"--adapter {a.Path}: file not found."
                    : $"{job.PromptFile}: prompt {i + 1}'s adapter {a.Path}: file not found.");

        using var model = ModelArguments.Load(job.Model, dtype, device, error, "generating", job.Variant, job.ConfigsFrom, job.Tokenizer);
        if (job.Width is null || job.Height is null || job.GuidanceScale is null)
            prompts = ReadPrompts(WithModelDefaults(job, model.NativeResolution, model.DefaultGuidanceScale)); // per-line overrides still win
        // clip-skip's range is the text encoder's depth, known now: refused before any image is written, not at its prompt.
        int layers = model.TextEncoder.Config.NumHiddenLayers;
        for (int i = 0; i < prompts.Count; i++)
            if (prompts[i].ClipSkip > layers)
                throw new ArgumentException($"{job.PromptFile ?? "command line"}: prompt {i + 1}: clip-skip must be in 0..{layers} for this text encoder ({layers} layers), got {prompts[i].ClipSkip}.");
        var etaIgnored = prompts.Where(p => p.Eta != 0 && model.SamplerKey(p.Sampler) != "ddim").ToList();
        if (etaIgnored.Count > 0)   // as in diffusers, eta reaches DDIM's step only; the images record none
            error.WriteLine($"warning: eta is DDIM's; ignored for {etaIgnored.Count} prompt(s) with another sampler ({model.SamplerKey(etaIgnored[0].Sampler)}).");

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
        private int _done, _inBatch = 1;

        public void Start(int pendingImages, int alreadyDone) => line.Start(pendingImages, alreadyDone);

        public void Step(int step, int steps)
        {
            line.Report(_done, $"step {step}/{steps}", _done + (double)step / steps * _inBatch);
        }

        public void ImagesWritten(IReadOnlyList<PlannedImage> images)
        {
            _done += images.Count;
            _inBatch = images.Count;
            line.Report(_done, $"last: {Path.GetFileName(Path.GetDirectoryName(images[^1].PngPath))}/{Path.GetFileName(images[^1].PngPath)}", force: true);
        }

        public void Warning(string message) => line.Message($"warning: {message}");
    }
}
