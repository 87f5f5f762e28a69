using DiffusionPeft.Benchmarks;

// Benchmark dispatcher: dotnet run -c Release --project tools/Benchmarks -- <benchmark> [options]
var benchmarks = new Dictionary<string, (string Help, Func<string[], int> Run)>(StringComparer.Ordinal)
{
    ["unet"] = (UNetBenchmark.Help, UNetBenchmark.Run),
    ["train"] = (TrainBenchmark.Help, TrainBenchmark.Run),
    ["adapters"] = ("training step of each adapter method on SD 1.5's 128 attention Linears; trainable parameters", AdapterBenchmark.Run),
    ["ops"] = (OpsBenchmark.Help, OpsBenchmark.Run),
    ["toy"] = (ToyModelBenchmark.Help, ToyModelBenchmark.Run),
    ["metrics"] = ("preprocessing and ONNX embedding throughput (DINO, CLIP) on synthetic images", MetricsBenchmark.Run),
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
