using System.Diagnostics;
using System.Globalization;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.StableDiffusion;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// The first epoch of a run with --cache-latents memory, without the UNet: batches of new items through the latent and
/// text caches, in a shuffled order, timed per window of batches. Does the cost of caching an image grow with the
/// number already cached (the toy UNet stage's first epoch slows from 0.6 to 0.9–1.4 s a step and recovers after it)?
/// --what moments|decode|text times the whole path, the image decoding alone, or the captions alone.
/// </summary>
public static class LatentCacheBenchmark
{
    public const string Help = "first-epoch caching without the UNet: --model DIR --images DIR [--batch 32] [--batches 600] [--window 100] [--dtype fp32|bf16] [--what moments|decode|text]";

    public static int Run(string[] args)
    {
        int Arg(string name, int fallback) => CliArgs.Int(args, name, fallback);
        string model = CliArgs.Value(args, "--model", ""), images = CliArgs.Value(args, "--images", "");
        if (model.Length == 0 || images.Length == 0) { Console.Error.WriteLine(Help); return 2; }
        int batch = Arg("--batch", 32), batches = Arg("--batches", 600), window = Arg("--window", 100);
        string what = CliArgs.Value(args, "--what", "moments");
        var config = new TrainConfig
        {
            Model = model, Images = images, Out = Path.Combine(Path.GetTempPath(), "dpeft-cache-bench"), Mode = TrainingMode.Full,
            Resolution = 64, Crop = CropMode.Center, CacheLatents = LatentCacheMode.Memory, DType = CliArgs.Value(args, "--dtype", "fp32"),
        };
        var run = new DreamBoothRun(config);
        var data = run.PrepareData();
        using var sd = StableDiffusionLoader.Load(model, TorchOptions.ParseDType(config.DType));
        using var parts = new StableDiffusionParts(sd);
        using var latents = new TensorCache(LatentCacheMode.Memory);
        using var text = new TensorCache(LatentCacheMode.Memory);
        var examples = new TrainingExamples(data, run.TargetSizes, config, run.Decoder, parts, parts, latents, text);
        var order = Enumerable.Range(0, data.Count).ToArray();
        new Random(17).Shuffle(order);   // the same order in every run
        Console.WriteLine($"{data.Count:N0} images, batches of {batch}, {what}, {config.DType}, threads {get_num_threads()}");
        var clock = Stopwatch.StartNew();
        for (int b = 0; b < batches && (b + 1) * batch <= order.Length; b++)
        {
            var items = order.AsSpan(b * batch, batch).ToArray();
            using (var scope = NewDisposeScope())
            {
                switch (what)
                {
                    case "decode": foreach (var i in items) run.Decoder.Decode(data[i].Path); break;
                    case "text": examples.Embeddings(items); break;
                    default: examples.Moments(items, 0); examples.Embeddings(items); break;
                }
            }
            if ((b + 1) % window == 0)
            {
                Console.WriteLine($"  batches {b + 2 - window,5}–{b + 1,5}: {clock.Elapsed.TotalMilliseconds / window,7:F1} ms a batch; gen0/1/2 GCs so far {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}, managed heap {GC.GetTotalMemory(false) >> 20} MiB");
                clock.Restart();
            }
        }
        return 0;
    }
}
