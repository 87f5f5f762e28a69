using System.Text.Json;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>Progress of a batch job: images done of the total, and the sampling steps within the current batch.</summary>
public interface IGenerationProgress
{
    void Start(int pendingImages, int alreadyDone);
    void Step(int step, int steps);
    void ImagesWritten(IReadOnlyList<PlannedImage> images);
    void Warning(string message);
}

/// <summary>
/// Executes a <see cref="GenerationPlan"/>: batches of pending images through the pipeline, each PNG written atomically
/// with its A1111 `parameters` chunk and a JSON sidecar, then a contact sheet per prompt once all its images exist.
/// A killed run loses at most the batch in flight; a rerun continues from there.
/// </summary>
public sealed class BatchGenerator(StableDiffusionModel model)
{
    public StableDiffusionModel Model { get; } = model;

    /// <summary>Puts a batch's adapters on the model; disposing the result takes them off. Needed when any prompt names adapters.</summary>
    public Func<IReadOnlyList<AdapterSpec>, IDisposable>? ApplyAdapters { get; init; }

    public int Run(GenerationPlan plan, Shard shard, IGenerationProgress progress, CancellationToken cancel = default)
    {
        var pending = plan.Pending(shard).Count();
        progress.Start(pending, plan.ForShard(shard).Count() - pending);
        int written = 0;
        IDisposable? activeAdapters = null;
        IReadOnlyList<AdapterSpec> activeSpecs = [];
        try
        {
            foreach (var batch in plan.Batches(shard))
            {
                cancel.ThrowIfCancellationRequested();
                var o = batch[0].Options;
                if (!o.Adapters.SequenceEqual(activeSpecs))
                {
                    activeAdapters?.Dispose();
                    activeAdapters = null;
                    activeSpecs = [];
                    if (o.Adapters.Count > 0)
                    {
                        if (ApplyAdapters is null) throw new InvalidOperationException("prompts name adapters, but no adapter loader was given.");
                        activeAdapters = ApplyAdapters(o.Adapters);
                    }
                    activeSpecs = o.Adapters;
                }
                using var scheduler = Model.CreateScheduler(o.Sampler);
                var pipeline = new StableDiffusionPipeline(Model, scheduler) { Warn = progress.Warning };
                using var result = pipeline.Run(new PipelineCall
                {
                    Prompts = batch.Select(i => i.Options.Prompt).ToList(),
                    NegativePrompts = batch.Select(i => i.Options.NegativePrompt).ToList(),
                    Width = o.Width, Height = o.Height, Steps = o.Steps, GuidanceScale = o.GuidanceScale, Eta = o.Eta, ClipSkip = o.ClipSkip,
                    GuidanceRescale = o.GuidanceRescale, Interval = o.GuidanceInterval,
                    Seeds = batch.Select(i => i.Seed).ToList(),
                }, new PipelineObserver { Progress = progress.Step });
                var images = ImageTensors.ToRgb(result.Images);
                var missing = new List<PlannedImage>();
                for (int k = 0; k < batch.Count; k++)
                    if (!File.Exists(batch[k].PngPath)) { Write(batch[k], images[k]); missing.Add(batch[k]); }
                written += missing.Count;
                progress.ImagesWritten(missing);
                WriteGridIfComplete(plan, batch[0].PromptIndex);
            }
            // A grid lost to a kill after its prompt's last image: no batch of that prompt is left to write it.
            foreach (var prompt in plan.ForShard(shard).Select(i => i.PromptIndex).Distinct())
                if (!File.Exists(Path.Combine(plan.PromptDir(prompt), ImageGrid.FileName))) WriteGridIfComplete(plan, prompt);
        }
        finally
        {
            activeAdapters?.Dispose();
        }
        return written;
    }

    public string SamplerKey(GenerationOptions o) => Model.SamplerKey(o.Sampler);

    private void Write(PlannedImage item, RgbImage image)
    {
        var sampler = SamplerKey(item.Options);
        var o = sampler == "ddim" ? item.Options : item.Options with { Eta = 0 };   // only DDIM uses eta (StableDiffusionPipeline): others record none
        var parameters = A1111Parameters.Format(o, item.Seed, Model.Name, Model.ShortHash, A1111Parameters.SamplerDisplayName(sampler));
        var sidecar = new Dictionary<string, object?>
        {
            ["prompt"] = o.Prompt, ["negative_prompt"] = o.NegativePrompt, ["seed"] = item.Seed, ["steps"] = o.Steps,
            ["sampler"] = sampler, ["cfg"] = o.GuidanceScale, ["cfg_rescale"] = o.GuidanceRescale,
            ["cfg_interval"] = o.GuidanceInterval.ToString(), ["width"] = o.Width, ["height"] = o.Height, ["clip_skip"] = o.ClipSkip,
            ["eta"] = o.Eta, ["model"] = Model.Name, ["model_hash"] = Model.ShortHash, ["dtype"] = TorchOptions.Name(Model.DType),
            ["adapters"] = o.Adapters.Select(a => new { path = a.Path, scale = a.Scale }).ToList(),
            ["prompt_index"] = item.PromptIndex, ["image_index"] = item.ImageIndex, ["file"] = Path.GetFileName(item.PngPath),
        };
        var chunks = new List<(string, string)> { ("parameters", parameters), ("dpeft", JsonSerializer.Serialize(sidecar)) };
        Directory.CreateDirectory(Path.GetDirectoryName(item.PngPath)!);
        // Sidecar first: a PNG on disk (the rerun marker) always has its sidecar.
        AtomicFile.WriteAllText(item.SidecarPath, JsonSerializer.Serialize(sidecar, new JsonSerializerOptions { WriteIndented = true }));
        PngWriter.Write(item.PngPath, image, chunks);
    }

    /// <summary>grid.png of a prompt's images, once every one of them exists (possibly written by other shards).</summary>
    private static void WriteGridIfComplete(GenerationPlan plan, int promptIndex)
    {
        var items = plan.All.Where(i => i.PromptIndex == promptIndex).ToList();
        if (items.Count < 2 || !items.All(i => File.Exists(i.PngPath))) return;
        var images = items.Select(i => ImageLoader.Load(i.PngPath)).ToList();
        int columns = (int)Math.Ceiling(Math.Sqrt(images.Count));
        PngWriter.Write(Path.Combine(plan.PromptDir(promptIndex), ImageGrid.FileName), ImageGrid.Compose(images, columns, gap: 4));
    }
}
