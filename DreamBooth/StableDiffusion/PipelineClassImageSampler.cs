using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>
/// Class images from the base model (call it before the adapters are injected, or with them disabled), at the model's
/// default guidance unless <paramref name="guidance"/> names one.
/// </summary>
public sealed class PipelineClassImageSampler(StableDiffusionModel model, int resolution, int steps = 30, double? guidance = null) : IClassImageSampler
{
    private readonly double _guidance = guidance ?? model.DefaultGuidanceScale;

    public void Generate(string prompt, IReadOnlyList<ClassImageRequest> batch, CancellationToken cancellationToken)
    {
        using var scheduler = model.CreateScheduler("default");
        var pipeline = new StableDiffusionPipeline(model, scheduler);
        using var result = pipeline.Run(new PipelineCall
        {
            Prompts = batch.Select(_ => prompt).ToArray(), Seeds = batch.Select(r => r.Seed).ToArray(),
            Width = resolution, Height = resolution, Steps = steps, GuidanceScale = _guidance,
        });
        var images = ImageTensors.ToRgb(result.Images);
        for (int i = 0; i < batch.Count; i++)
            PngWriter.Write(batch[i].Path, images[i], [("parameters", A1111Parameters.Format(prompt, steps, _guidance, batch[i].Seed, resolution, resolution, model))]);
    }
}
