using DiffusionPeft.Adapters;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// One seed of the planted-personalization experiment: a teacher (the base model with ΔW* added to every UNet attention
/// projection), its samples written as an instance-image folder, and the fixed evaluation data: held-out teacher
/// latents noised at random timesteps with the teacher's and the base's noise predictions for two prompts, the teacher's
/// and the base's images at held-out seeds, and the instance images' latents for the data-fit diagnostic.
/// </summary>
public sealed class PlantedWorld : IDisposable
{
    public const int Resolution = 64, SampleSteps = 20;

    private PlantedWorld() { }

    public required int Seed { get; init; }
    /// <summary>The instance prompt (<see cref="PlantedSettings.Prompt"/>).</summary>
    public required string Prompt { get; init; }
    public required string ImagesDir { get; init; }
    public required IReadOnlyDictionary<string, Tensor> Planted { get; init; }
    /// <summary>Per planted layer, E[x·xᵀ] of its inputs on the instance prompt (the base model denoising its own samples at random timesteps).</summary>
    public required IReadOnlyDictionary<string, Tensor> InputMoments { get; init; }
    /// <summary>Per prompt: noisy latents, timesteps, text embeddings, the teacher's and the base's ε.</summary>
    public required IReadOnlyList<(string Prompt, Tensor Noisy, Tensor Timesteps, Tensor Embeddings, Tensor TeacherEps, Tensor BaseEps)> NoisePrediction { get; init; }
    public required long[] SampleSeeds { get; init; }
    public required Tensor TeacherImages { get; init; }
    public required Tensor BaseImages { get; init; }
    /// <summary>
    /// The instance images' latents noised at fixed timesteps, their embeddings and the training target (the noise for an
    /// ε model, α·ε − σ·x0 for a v model): the training objective on the data, with fixed randomness.
    /// </summary>
    public required (Tensor Noisy, Tensor Timesteps, Tensor Embeddings, Tensor Target) DataFit { get; init; }
    public required double TeacherDataFit { get; init; }
    public required double BaseDataFit { get; init; }
    /// <summary>cos(−dL/dW, ΔW*) at the base model, per layer kind and "all": whether the objective on this data points towards the teacher at all.</summary>
    public required IReadOnlyDictionary<string, double> GradientAlignment { get; init; }

    public static PlantedWorld Create(string modelPath, int seed, string dir, PlantedSettings s)
    {
        using var scope = NewDisposeScope();
        using var teacher = StableDiffusionLoader.Load(modelPath);
        using var baseModel = StableDiffusionLoader.Load(modelPath);
        var moments = PromptInputMoments(teacher, s.Prompt, seed);   // the teacher is still the base model here
        var planted = PlantedUpdates.Plant(teacher.Unet, InjectionTargets.UNetAttention, s.PlantedRank, s.PlantedKappa, s.RelativeScale,
            new Generator((ulong)(31_000 + seed)), s.Span == PlantedSpan.Inputs ? moments : null);

        string images = Path.Combine(dir, "images");
        Directory.CreateDirectory(images);
        var instanceSeeds = Enumerable.Range(0, s.InstanceImages).Select(i => 100_000L * (seed + 1) + i).ToArray();
        foreach (var chunk in instanceSeeds.Chunk(8))
        {
            using var result = Sample(teacher, s.Prompt, chunk);
            var rgb = ImageTensors.ToRgb(result.Images);
            for (int i = 0; i < chunk.Length; i++) PngWriter.Write(Path.Combine(images, $"{chunk[i]}.png"), rgb[i]);
        }

        var heldSeeds = Enumerable.Range(0, 8).Select(i => 200_000L * (seed + 1) + i).ToArray();
        Tensor x0;
        using (var held = Sample(teacher, s.Prompt, heldSeeds)) x0 = held.Latents.clone();
        var g = new Generator((ulong)(41_000 + seed));
        using var scheduler = new DdpmScheduler(teacher.SchedulerConfig);
        var noisePrediction = new List<(string, Tensor, Tensor, Tensor, Tensor, Tensor)>();
        foreach (var prompt in new[] { s.Prompt, s.HeldOutPrompt })
        {
            var x = x0.repeat(4, 1, 1, 1);
            var noise = randn(x.shape, generator: g);
            var t = randint(0, teacher.SchedulerConfig.NumTrainTimesteps, [x.shape[0]], generator: g);
            var noisy = scheduler.AddNoise(x, noise, t);
            var emb = Embed(teacher, prompt, (int)x.shape[0]);
            noisePrediction.Add((prompt, Keep(noisy), Keep(t), Keep(emb), Keep(Eps(teacher, noisy, t, emb)), Keep(Eps(baseModel, noisy, t, emb))));
        }

        var sampleSeeds = Enumerable.Range(0, 4).Select(i => 300_000L * (seed + 1) + i).ToArray();
        Tensor teacherImages, baseImages;
        using (var r = Sample(teacher, s.Prompt, sampleSeeds)) teacherImages = Keep(r.Images.clone());
        using (var r = Sample(baseModel, s.Prompt, sampleSeeds)) baseImages = Keep(r.Images.clone());

        // The data as training sees it: PNG → VAE moments (mean) · scaling factor; fixed noise and timesteps.
        var parts = new StableDiffusionParts(baseModel);
        var pixels = stack(Directory.GetFiles(images, "*.png").Order().Select(f => ImageTensors.ToTensor(ImageLoader.Load(f))));
        Tensor latents;
        using (no_grad()) latents = parts.EncodeMoments(pixels).chunk(2, 1)[0] * parts.ScalingFactor;
        var dNoise = randn(latents.shape, generator: g);
        var dT = randint(0, teacher.SchedulerConfig.NumTrainTimesteps, [latents.shape[0]], generator: g);
        var dNoisy = scheduler.AddNoise(latents, dNoise, dT);
        var dTarget = DiffusionLossTerms.Target(parts, latents, dNoise, dT);   // what training fits: ε or v, as the model predicts
        var dEmb = Embed(teacher, s.Prompt, (int)latents.shape[0]);
        parts.Dispose();
        var alignment = Alignment(baseModel, planted, dNoisy, dT, dEmb, dTarget);

        return new PlantedWorld
        {
            Seed = seed, Prompt = s.Prompt, ImagesDir = images, Planted = planted, InputMoments = moments, NoisePrediction = noisePrediction, SampleSeeds = sampleSeeds,
            TeacherImages = teacherImages, BaseImages = baseImages,
            DataFit = (Keep(dNoisy), Keep(dT), Keep(dEmb), Keep(dTarget)),
            TeacherDataFit = Mse(Eps(teacher, dNoisy, dT, dEmb), dTarget),
            BaseDataFit = Mse(Eps(baseModel, dNoisy, dT, dEmb), dTarget),
            GradientAlignment = alignment,
        };
    }

    /// <summary>
    /// Each attention projection's input second moment while the model denoises its own samples of the prompt (4 images,
    /// 8 random timesteps each, conditional branch only): the inputs an instance-prompt training run shows the layer.
    /// </summary>
    private static Dictionary<string, Tensor> PromptInputMoments(StableDiffusionModel model, string prompt, int seed)
    {
        using var scope = NewDisposeScope();
        var seeds = Enumerable.Range(0, 4).Select(i => 500_000L * (seed + 1) + i).ToArray();
        Tensor x0;
        using (var r = Sample(model, prompt, seeds)) x0 = r.Latents.clone();
        var g = new Generator((ulong)(51_000 + seed));
        var x = x0.repeat(8, 1, 1, 1);
        var t = randint(0, model.SchedulerConfig.NumTrainTimesteps, [x.shape[0]], generator: g);
        using var scheduler = new DdpmScheduler(model.SchedulerConfig);
        var noisy = scheduler.AddNoise(x, randn(x.shape, generator: g), t);
        var emb = Embed(model, prompt, (int)x.shape[0]);
        var paths = AdapterInjector.LinearPaths(model.Unet).Where(InjectionTargets.UNetAttention.Selects).ToList();
        var moments = LayerInputs.SecondMoments(model.Unet, paths, () => Eps(model, noisy, t, emb));
        return moments;   // SecondMoments' tensors belong to no scope
    }

    /// <summary>cos(−G, ΔW*) summed over each layer kind's layers, G = d(objective on the data)/dW at the base weights.</summary>
    private static Dictionary<string, double> Alignment(StableDiffusionModel model, IReadOnlyDictionary<string, Tensor> planted, Tensor noisy, Tensor t, Tensor emb, Tensor target)
    {
        using var scope = NewDisposeScope();
        foreach (var p in model.Unet.parameters()) p.requires_grad = false;
        var weights = planted.Keys.ToDictionary(k => k, k => ((TorchSharp.Modules.Linear)AdapterInjector.Find(model.Unet, k)!).weight!);
        foreach (var w in weights.Values) w.requires_grad = true;
        (model.Unet.forward(noisy, t, emb) - target).square().mean().backward();
        var sums = new Dictionary<string, (double Dot, double G, double S)>();
        foreach (var (path, w) in weights)
        {
            var g = w.grad!;
            var star = planted[path];
            double dot = -(g * star).sum().ToDouble(), gg = g.square().sum().ToDouble(), ss = star.square().sum().ToDouble();
            foreach (var key in new[] { AdapterInjector.KindOf(path), "all" })
            {
                var a = sums.GetValueOrDefault(key);
                sums[key] = (a.Dot + dot, a.G + gg, a.S + ss);
            }
            w.requires_grad = false;
        }
        return sums.ToDictionary(kv => kv.Key, kv => kv.Value.Dot / Math.Sqrt(kv.Value.G * kv.Value.S));
    }

    public static PipelineResult Sample(StableDiffusionModel model, string prompt, IReadOnlyList<long> seeds)
    {
        using var scheduler = model.CreateScheduler("default");
        return new StableDiffusionPipeline(model, scheduler).Run(new PipelineCall
        {
            Prompts = seeds.Select(_ => prompt).ToArray(), Seeds = seeds.ToArray(), Width = Resolution, Height = Resolution, Steps = SampleSteps,
        });
    }

    public static Tensor Eps(StableDiffusionModel model, Tensor noisy, Tensor t, Tensor emb)
    {
        using var _ = no_grad();
        return model.Unet.forward(noisy, t, emb);
    }

    public static double Mse(Tensor a, Tensor b) => (a - b).square().mean().ToDouble();

    private static Tensor Embed(StableDiffusionModel model, string prompt, int n)
    {
        using var _ = no_grad();
        using var scheduler = model.CreateScheduler("default");
        return new StableDiffusionPipeline(model, scheduler).EncodePrompts(Enumerable.Repeat(prompt, n).ToList(), 0);
    }

    private static Tensor Keep(Tensor t) => t.detach().clone().DetachFromDisposeScope();

    public void Dispose()
    {
        foreach (var t in Planted.Values) t.Dispose();
        foreach (var t in InputMoments.Values) t.Dispose();
        foreach (var (_, a, b, c, d, e) in NoisePrediction) { a.Dispose(); b.Dispose(); c.Dispose(); d.Dispose(); e.Dispose(); }
        TeacherImages.Dispose();
        BaseImages.Dispose();
        DataFit.Noisy.Dispose(); DataFit.Timesteps.Dispose(); DataFit.Embeddings.Dispose(); DataFit.Target.Dispose();
    }
}
