using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.Metrics;
using DiffusionPeft.ToyWorld.Judge;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.ToyModel;

/// <summary>How the toy protocol's prompts are sampled: images per prompt (seeds Seed, Seed + 1, ...), steps, guidance (null: the model's default).</summary>
public sealed record ProtocolSampling(int ImagesPerPrompt, long Seed, int Steps, double? GuidanceScale = null);

/// <summary>
/// The toy DreamBooth protocol's prompts for one subject, generated with or without an adapter and scored: toy DINO /
/// CLIP-I / CLIP-T against the subject's held-out views (<see cref="FidelityEvaluation"/>, what `dpeft eval` runs) and
/// the scene judge against each prompt. What `dpeft demo` does before and after training, and each DreamBooth-table cell.
/// </summary>
public static class ToyProtocolImages
{
    /// <summary>Writes <c>folder/SUBJECT/NNNN-slug/*.png</c>; images already there are kept (a killed run resumes).</summary>
    public static GenerationPlan Generate(StableDiffusionModel model, ToySubject subject, IReadOnlyList<AdapterSpec> adapters, ProtocolSampling sampling,
                                          string folder, IGenerationProgress progress, CancellationToken cancel)
    {
        var plan = new GenerationPlan(ToyDreamBoothPrompts.Templates.Select(t => new GenerationOptions
        {
            Prompt = ToyDreamBoothPrompts.Fill(t, subject), Count = sampling.ImagesPerPrompt, Seed = sampling.Seed, Steps = sampling.Steps,
            GuidanceScale = sampling.GuidanceScale ?? model.DefaultGuidanceScale, Width = 64, Height = 64, BatchSize = Math.Max(1, sampling.ImagesPerPrompt), Adapters = adapters,
        }).ToList(), Path.Combine(folder, subject.Name));
        new BatchGenerator(model) { ApplyAdapters = s => ActiveAdapters.Apply(model, s, progress.Warning) }.Run(plan, Shard.All, progress, cancel);
        return plan;
    }

    /// <summary>The images of <see cref="Generate"/>'s <paramref name="folder"/> scored against the protocol and held-out views, and judged.</summary>
    public static (FidelityReport Report, JudgeAccuracy Judged) Score(string folder, ToySubject subject, string protocol, string heldOut,
                                                                     FidelityModels evaluators, string label, string? cacheDir)
    {
        var report = FidelityEvaluation.Run(protocol, folder, heldOut, evaluators, new FidelityOptions
        {
            Label = label, Identifier = subject.Identifier, Subjects = [subject.Name], CacheDir = cacheDir,
        });
        return (report, JudgeAccuracy.OfGeneratedImages(folder, FidelityEvaluation.PromptOf));
    }
}
