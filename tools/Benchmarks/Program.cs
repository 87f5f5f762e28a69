using DiffusionPeft.Benchmarks;
using DiffusionPeft.Diffusion.Platform;

// DPEFT_LIBTORCH (e.g. a CUDA PyTorch's torch/lib) is applied before anything touches TorchSharp.
try { LibTorchSelection.Apply(args); }
catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}

// Benchmark dispatcher: dotnet run -c Release --project tools/Benchmarks -- <benchmark> [options]
var benchmarks = new Dictionary<string, (string Help, Func<string[], int> Run)>(StringComparer.Ordinal)
{
    ["unet"] = (UNetBenchmark.Help, UNetBenchmark.Run),
    ["train"] = (TrainBenchmark.Help, TrainBenchmark.Run),
    ["adapters"] = ("training step of each adapter method on SD 1.5's 128 attention Linears: [--device cpu|cuda[:N]] [--ranks 4,16] [--reps 3] [--methods ...] [--quick]", AdapterBenchmark.Run),
    ["ops"] = (OpsBenchmark.Help, OpsBenchmark.Run),
    ["toy"] = (ToyModelBenchmark.Help, ToyModelBenchmark.Run),
    ["metrics"] = ("preprocessing and ONNX embedding throughput (DINO, CLIP) on synthetic images", MetricsBenchmark.Run),
    ["sd15-random"] = (RandomSd15Folder.Help, RandomSd15Folder.Run),
    ["latent-cache"] = (LatentCacheBenchmark.Help, LatentCacheBenchmark.Run),
};

if (args.Length == 0 || args[0] is "-h" or "--help" or "help" || !benchmarks.ContainsKey(args[0]))
{
    if (args.Length > 0 && !benchmarks.ContainsKey(args[0]) && args[0] is not ("-h" or "--help" or "help"))
        Console.Error.WriteLine($"unknown benchmark '{args[0]}'");
    Console.WriteLine("usage: dotnet run -c Release --project tools/Benchmarks -- <benchmark> [options]");
    foreach (var (name, (help, _)) in benchmarks) Console.WriteLine($"  {name,-8} {help}");
    return args.Length == 0 || args[0] is "-h" or "--help" or "help" ? 0 : 2;
}
return benchmarks[args[0]].Run(args[1..]);
