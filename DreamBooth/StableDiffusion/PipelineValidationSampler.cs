using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>
/// Validation images with the adapters as they are at a step: every validation prompt × seed, saved as
/// validation/step-000123/p0-s42.png (written atomically). <paramref name="prepare"/>, when given, readies the model
/// for drawing until what it returns is disposed (the whitening folded in: <see cref="ConditioningWhitening.FoldedInto"/>).
/// Guidance null: the model's default (<see cref="StableDiffusionModel.DefaultGuidanceScale"/>). Each PNG's A1111
/// <c>parameters</c> names the prompt, seed, sampler, model, the training step and <paramref name="trained"/> (what trains).
/// </summary>
public sealed class PipelineValidationSampler(StableDiffusionModel model, IReadOnlyList<string> prompts, IReadOnlyList<long> seeds,
                                              int resolution, int steps = 25, double? guidance = null, Func<IDisposable>? prepare = null,
                                              string? trained = null) : IValidationSampler
{
    private readonly double _guidance = guidance ?? model.DefaultGuidanceScale;

    /// <summary>The pairs naming what is trained, at which step: "Training step" and, when given, "Trained" (the adapter or "full fine-tuning").</summary>
    private (string, string)[] Trained(long step)
    {
        var pair = ("Training step", step.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return trained is null ? [pair] : [pair, ("Trained", trained)];
    }

    public static string FileName(long step, int prompt, long seed) => Path.Combine($"step-{step:D6}", $"p{prompt}-s{seed}.png");

    public void Validate(long step, string outputDirectory, CancellationToken cancellationToken)
    {
        using var prepared = prepare?.Invoke();
        using var scheduler = model.CreateScheduler("default");
        var pipeline = new StableDiffusionPipeline(model, scheduler);
        for (int p = 0; p < prompts.Count; p++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var result = pipeline.Run(new PipelineCall
            {
                Prompts = seeds.Select(_ => prompts[p]).ToArray(), Seeds = seeds.ToArray(),
                Width = resolution, Height = resolution, Steps = steps, GuidanceScale = _guidance,
            });
            var images = ImageTensors.ToRgb(result.Images);
            for (int s = 0; s < seeds.Count; s++)
                PngWriter.Write(Path.Combine(outputDirectory, FileName(step, p, seeds[s])), images[s],
                    [("parameters", A1111Parameters.Format(prompts[p], steps, _guidance, seeds[s], resolution, resolution, model, Trained(step)))]);
        }
    }
}
