using DiffusionPeft.Experiments.AdapterMethods;
using TorchSharp;

// dotnet run -c Release --project tools/experiments -- adapters [--quick] [--out DIR] [--workers N] [--steps N]
if (args.Length == 0 || args[0] != "adapters")
{
    Console.Error.WriteLine("usage: experiments adapters [--quick] [--out DIR] [--workers N] [--steps N] [--task linear|mlp]");
    return 2;
}

var config = args.Contains("--quick") ? SweepConfig.Quick : SweepConfig.Full;
string? outDir = null;
for (int i = 1; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--quick": break;
        case "--out": outDir = Next(); break;
        case "--workers": config = config with { Workers = int.Parse(Next()) }; break;
        case "--steps": config = config with { Steps = int.Parse(Next()) }; break;
        case "--task": config = config with { Tasks = [Enum.Parse<TaskKind>(Next(), ignoreCase: true)] }; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}
outDir ??= Path.Combine(RepoRoot(), "docs", "experiments", "adapter-methods" + (config.Name == "full" ? "" : "-" + config.Name));

// Runs are tiny (64-wide layers): one intra-op thread per run and several runs in parallel use the cores better.
torch.set_num_threads(1);
var methods = MethodSpec.All(config);
var results = Sweep.Run(config, methods, Console.Out);
var summary = Summary.Build(config, methods, results);
Report.Write(outDir, config, methods, results, summary);
Console.WriteLine($"wrote {outDir}");
return 0;

static string RepoRoot()
{
    for (var d = new DirectoryInfo(Environment.CurrentDirectory); d is not null; d = d.Parent)
        if (File.Exists(Path.Combine(d.FullName, "DiffusionPeft.sln"))) return d.FullName;
    return Environment.CurrentDirectory;
}
