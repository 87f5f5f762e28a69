using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>8× average pooling and a fixed 1×1 conv to 8 channels (mean and logvar of 4 latent channels).</summary>
internal sealed class ToyVae : ILatentEncoder, IDisposable
{
    private readonly Tensor _weight;
    public int Calls { get; private set; }
    public ToyVae() { using var g = new Generator(5); _weight = randn([8, 3, 1, 1], generator: g) * 0.5; }
    public string Identity => "toy-vae-1";
    public double ScalingFactor => 0.18215;
    public Tensor EncodeMoments(Tensor pixels) { Calls++; return nn.functional.conv2d(nn.functional.avg_pool2d(pixels, 8), _weight); }
    public void Dispose() => _weight.Dispose();
}

/// <summary>Prompts → [B, 4, 8] from their character codes.</summary>
internal sealed class ToyText : IPromptEncoder
{
    public int Calls { get; private set; }
    public string Identity => "toy-text-1";
    public Tensor Encode(IReadOnlyList<string> prompts)
    {
        Calls++;
        var rows = prompts.Select(p => Enumerable.Range(0, 32).Select(i => (float)(p[i % p.Length] % 17) / 17f).ToArray()).SelectMany(x => x).ToArray();
        return tensor(rows, [prompts.Count, 4, 8]);
    }
}

/// <summary>DDPM forward process with SD's scaled_linear betas.</summary>
internal sealed class ToySchedule(PredictionType prediction) : INoiseSchedule, IDisposable
{
    public int NumTrainTimesteps => 1000;
    public PredictionType Prediction => prediction;
    public Tensor AlphasCumprod { get; } = (1 - linspace(Math.Sqrt(0.00085), Math.Sqrt(0.012), 1000, dtype: ScalarType.Float64).pow(2)).cumprod(0).to_type(ScalarType.Float32);
    private Tensor Coef(Tensor t, bool signal) { var a = AlphasCumprod[t]; return (signal ? a : 1 - a).sqrt().view(-1, 1, 1, 1); }
    public Tensor AddNoise(Tensor x, Tensor noise, Tensor t) => Coef(t, true) * x + Coef(t, false) * noise;
    public Tensor GetVelocity(Tensor x, Tensor noise, Tensor t) => Coef(t, true) * noise - Coef(t, false) * x;
    public void Dispose() => AlphasCumprod.Dispose();
}

/// <summary>A per-channel linear map of the noisy latents plus a text bias: the "adapter" weights train.</summary>
internal sealed class ToyDenoiser : IDenoiser, ITrainingTarget, IDisposable
{
    private readonly Parameter _w = new(zeros(4, 4)), _bias = new(zeros(4));
    public List<long> BatchSizes { get; } = [];
    public long RampStep { get; private set; }
    public ToyDenoiser(double lr) => ParameterGroups = [new("unet", [("w", _w), ("bias", _bias)], lr)];
    public IReadOnlyList<TrainableGroup> ParameterGroups { get; }
    public Tensor Predict(Tensor noisy, Tensor t, Tensor emb)
    {
        BatchSizes.Add(noisy.shape[0]);
        return einsum("oc,bchw->bohw", _w, noisy) + _bias.view(1, 4, 1, 1) + emb.mean([1, 2]).view(-1, 1, 1, 1) * 0.01;
    }
    public void OnOptimizerStep(long stepsTaken) => RampStep = stepsTaken;
    public void WriteFinal(string runDirectory, long stepsTaken) { }
    public void Dispose() { _w.Dispose(); _bias.Dispose(); }
}

public sealed class NoisePredictionObjectiveTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-obj-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string Folder(string name, params string[] sizes)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;
        for (int i = 0; i < sizes.Length; i++) File.WriteAllText(Path.Combine(dir, $"{i}.png"), sizes[i]);
        return dir;
    }

    private TrainConfig Config(LatentCacheMode cache, string? classes = null) => new()
    {
        Model = "toy", Images = Folder("inst-" + Guid.NewGuid().ToString("N"), "80 64", "64 96", "70 70"), Prompt = "a photo of sks dog",
        Out = Path.Combine(_dir, "run-" + Guid.NewGuid().ToString("N")), Resolution = 64, Batch = 2, Lr = 0.05, Steps = 40, CacheLatents = cache,
        Seed = 9, Flip = true, CheckpointEvery = 0, ClassPrompt = classes is null ? null : "a photo of dog", ClassImages = classes,
    };

    /// <param name="masks">Scan the folder's masks too (--masked-loss instances; class images are never masked).</param>
    internal static TrainingExamples Examples(TrainConfig c, string folder, string prompt, ToyVae vae, ToyText text, TensorCache latents, TensorCache embeddings,
                                              bool masks = false)
    {
        var data = InstanceDataset.Scan(folder, prompt, new FakeDecoder(), masks: masks);
        var targets = data.Images.Select(_ => new Bucket(c.Resolution, c.Resolution)).ToArray();
        return new TrainingExamples(data, targets, c, new FakeDecoder(), vae, text, latents, embeddings);
    }

    internal static double[] Losses(TrainConfig c, LatentCacheMode mode, string cacheDir, PredictionType prediction, int batches, out (int Vae, int Text) calls) =>
        Losses(c, mode, cacheDir, prediction, batches, out calls, fill: false, out _);

    private static double[] Losses(TrainConfig c, LatentCacheMode mode, string cacheDir, PredictionType prediction, int batches, out (int Vae, int Text) calls,
                                   bool fill, out (int Vae, int Text) filled)
    {
        using var vae = new ToyVae();
        var text = new ToyText();
        using var latents = new TensorCache(mode, cacheDir);
        using var embeddings = new TensorCache(mode, cacheDir);
        var examples = Examples(c, c.Images, c.Prompt, vae, text, latents, embeddings, masks: c.MaskedLoss);
        var messages = new List<string>();
        if (fill) examples.Fill(messages.Add);
        filled = (vae.Calls, text.Calls);
        Assert.Equal(fill && !c.Flip ? 1 : 0, messages.Count);   // three images: one progress line, at the end
        if (messages.Count == 1) Assert.StartsWith("caching latents: 3/3 images", messages[0]);
        using var schedule = new ToySchedule(prediction);
        using var denoiser = new ToyDenoiser(c.Lr);
        var objective = new NoisePredictionObjective(c, examples, null, vae, schedule, denoiser);
        using var rng = new TrainingRng(c.Seed);
        var order = new DataOrder(examples.Count, c.Batch, c.Seed);
        var result = new double[batches];
        for (int i = 0; i < batches; i++)
        {
            var (epoch, items) = order.Next();
            using var loss = objective.Loss(new Batch(i, 0, epoch, items), rng);
            result[i] = loss.item<float>();
        }
        calls = (vae.Calls, text.Calls);
        return result;
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.VPrediction)]
    public void CachedAndUncachedTrainingGiveTheSameLoss(PredictionType prediction)
    {
        var c = Config(LatentCacheMode.None) with { SnrGamma = 5, NoiseOffset = 0.05 };
        var uncached = Losses(c, LatentCacheMode.None, _dir, prediction, 6, out var none);
        var memory = Losses(c with { CacheLatents = LatentCacheMode.Memory }, LatentCacheMode.Memory, _dir, prediction, 6, out var mem);
        var diskDir = Path.Combine(_dir, "cache");
        var disk = Losses(c with { CacheLatents = LatentCacheMode.Disk }, LatentCacheMode.Disk, diskDir, prediction, 6, out var disk1);
        var diskAgain = Losses(c with { CacheLatents = LatentCacheMode.Disk }, LatentCacheMode.Disk, diskDir, prediction, 6, out var disk2);
        Assert.All(uncached, l => Assert.True(double.IsFinite(l) && l > 0));
        Assert.Equal(uncached, memory);
        Assert.Equal(uncached, disk);
        Assert.Equal(uncached, diskAgain);
        Assert.Equal(9, none.Vae);                // 3 epochs of 3 images (batches of 2 and 1), every time
        Assert.InRange(mem.Vae, 3, 6);            // once per (image, flip)
        Assert.Equal(mem.Vae, disk1.Vae);
        Assert.Equal(0, disk2.Vae);               // a second run reads the disk cache
        Assert.Equal(0, disk2.Text);
    }

    /// <summary>Filling the memory cache before the first step encodes each image once, alone, as the loop would: the
    /// losses are the same and the loop encodes nothing more. With --flip the plan changes per epoch and nothing is filled.</summary>
    [Fact]
    public void FillingTheCacheFirstChangesNoLossAndLeavesTheLoopNothingToEncode()
    {
        var c = Config(LatentCacheMode.Memory) with { Flip = false };
        var lazy = Losses(c, LatentCacheMode.Memory, _dir, PredictionType.VPrediction, 6, out var lazyCalls);
        var eager = Losses(c, LatentCacheMode.Memory, _dir, PredictionType.VPrediction, 6, out var eagerCalls, fill: true, out var filled);
        Assert.Equal(lazy, eager);
        Assert.Equal((3, 1), filled);             // three images, one prompt
        Assert.Equal(filled, eagerCalls);         // nothing encoded in the loop
        Assert.Equal(lazyCalls, eagerCalls);
        Losses(c with { Flip = true }, LatentCacheMode.Memory, _dir, PredictionType.VPrediction, 1, out _, fill: true, out var flipped);
        Assert.Equal((0, 0), flipped);
    }

    /// <summary>The trainer's Prepare fills a memory cache only when the run ahead draws at least every image once.</summary>
    [Fact]
    public void PrepareFillsTheMemoryCacheOnlyForARunThatDrawsEveryImage()
    {
        var c = Config(LatentCacheMode.Memory) with { Flip = false };
        using var vae = new ToyVae();
        var text = new ToyText();
        using var latents = new TensorCache(LatentCacheMode.Memory);
        using var embeddings = new TensorCache(LatentCacheMode.Memory);
        var examples = Examples(c, c.Images, c.Prompt, vae, text, latents, embeddings);
        using var schedule = new ToySchedule(PredictionType.VPrediction);
        using var denoiser = new ToyDenoiser(c.Lr);
        var objective = new NoisePredictionObjective(c, examples, null, vae, schedule, denoiser);
        objective.Prepare(2, _ => { }, default);
        Assert.Equal(0, vae.Calls);
        objective.Prepare(3, _ => { }, default);
        Assert.Equal(3, vae.Calls);
        var none = new NoisePredictionObjective(c with { CacheLatents = LatentCacheMode.None }, examples, null, vae, schedule, denoiser);
        none.Prepare(1000, _ => { }, default);
        Assert.Equal(3, vae.Calls);
    }

    [Fact]
    public void LogitNormalTimestepsFollowTheirDistribution()
    {
        using var n = randn([200_000], generator: new Generator(3));
        using var t = DiffusionLossTerms.LogitNormalTimesteps(n, 0, 1, 1000);
        Assert.Equal(ScalarType.Int64, t.dtype);
        Assert.True(t.min().item<long>() >= 0 && t.max().item<long>() <= 999);
        using var extremes = DiffusionLossTerms.LogitNormalTimesteps(tensor(new[] { -100f, 100f }), 0, 1, 1000);
        Assert.Equal([0L, 999L], extremes.data<long>().ToArray());                 // clamped to [0, T − 1]
        using var tf = t.to_type(ScalarType.Float64);
        Assert.InRange(tf.median().item<double>(), 495, 505);                       // sigmoid(0) = 1/2
        // P(250 <= t < 750) = P(|n| < logit(0.75) = 1.0986) = 0.728 (uniform: 0.5)
        double middle = (tf.ge(250) & tf.lt(750)).to_type(ScalarType.Float64).mean().item<double>();
        Assert.InRange(middle, 0.72, 0.736);
        using var shifted = DiffusionLossTerms.LogitNormalTimesteps(n, 1, 1, 1000).to_type(ScalarType.Float64);
        Assert.InRange(shifted.median().item<double>(), 726, 736);                 // 1000 · sigmoid(1) = 731: noisier
    }

    [Fact]
    public void LogitNormalSamplingChangesOnlyTheTimesteps()
    {
        var c = Config(LatentCacheMode.Memory);
        var uniform = Losses(c, LatentCacheMode.Memory, _dir, PredictionType.Epsilon, 3, out _);
        var logitNormal = Losses(c with { TimestepSampling = TimestepSampling.LogitNormal }, LatentCacheMode.Memory, _dir, PredictionType.Epsilon, 3, out _);
        var again = Losses(c with { TimestepSampling = TimestepSampling.LogitNormal }, LatentCacheMode.Memory, _dir, PredictionType.Epsilon, 3, out _);
        Assert.All(logitNormal, l => Assert.True(double.IsFinite(l) && l > 0));
        Assert.NotEqual(uniform, logitNormal);
        Assert.Equal(logitNormal, again);                                           // drawn from the training RNG: reproducible
    }

    [Fact]
    public void MinSnrWithAHugeGammaIsThePlainLossForEpsilon()
    {
        var c = Config(LatentCacheMode.Memory);
        var plain = Losses(c, LatentCacheMode.Memory, _dir, PredictionType.Epsilon, 3, out _);
        var weighted = Losses(c with { SnrGamma = 1e9 }, LatentCacheMode.Memory, _dir, PredictionType.Epsilon, 3, out _);
        for (int i = 0; i < 3; i++) Assert.Equal(plain[i], weighted[i], 1e-6 * plain[i]);
        var clipped = Losses(c with { SnrGamma = 0.01 }, LatentCacheMode.Memory, _dir, PredictionType.Epsilon, 3, out _);
        Assert.True(clipped.Sum() < plain.Sum()); // weights min(snr, γ)/snr ≤ 1
    }

    [Fact]
    public void TrainsWithPriorPreservationAndLossFalls()
    {
        var classDir = Folder("classes", "64 64", "64 64", "64 64", "64 64", "64 64");
        var c = Config(LatentCacheMode.Memory, classDir) with { PriorWeight = 0.5 };
        using var vae = new ToyVae();
        var text = new ToyText();
        using var latents = new TensorCache(LatentCacheMode.Memory);
        using var embeddings = new TensorCache(LatentCacheMode.Memory);
        var instances = Examples(c, c.Images, c.Prompt, vae, text, latents, embeddings);
        var classes = Examples(c, classDir, c.ClassPrompt!, vae, text, latents, embeddings);
        using var schedule = new ToySchedule(PredictionType.Epsilon);
        using var denoiser = new ToyDenoiser(c.Lr);
        var objective = new NoisePredictionObjective(c, instances, classes, vae, schedule, denoiser);
        var progress = new RecordingProgress();
        using (var trainer = new Trainer(c, c.Out, denoiser, objective, new DataOrder(Math.Max(instances.Count, classes.Count), c.Batch, c.Seed), progress))
            trainer.Run();
        Assert.All(denoiser.BatchSizes, b => Assert.True(b is 4 or 2)); // instances + their class images
        Assert.Contains(4L, denoiser.BatchSizes);
        Assert.Equal(40, denoiser.RampStep);
        double first = progress.Steps.Take(10).Average(s => s.Loss), last = progress.Steps.TakeLast(10).Average(s => s.Loss);
        Assert.True(last < 0.8 * first, $"loss {first} → {last}");
        Assert.Equal(2, text.Calls); // one caption per data set, cached
    }
}
