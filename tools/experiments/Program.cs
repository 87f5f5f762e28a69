using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Experiments.Claims;
using DiffusionPeft.Experiments.DreamBoothTable;
using DiffusionPeft.Experiments.ToyClipShape;
using DiffusionPeft.Experiments.ToyShapeIsolation;
using DiffusionPeft.Experiments.ToyTextStates;
using TorchSharp;

// dotnet run -c Release --project tools/experiments -- claims [--quick] [--only KEY[,KEY]] [--out DIR] [--workers N] [--model DIR --planted-prompt P --planted-held-out-prompt P] [--planted-span inputs|random]
// dotnet run -c Release --project tools/experiments -- toy-clip-shape [--steps N] [--threads N] [--seed S] [--out DIR] [--quick]
// dotnet run -c Release --project tools/experiments -- toy-shape-isolation --base RUN/base [--compare MODEL] [--images N] [--steps N] [--lr X] [--whiten-conditioning] [--prompts N] [--seed S] [--world-seed W] [--sizes large[,medium,small]] [--textures plain[,gradient,striped,checked]] [--masked-loss W] [--captions full|training] [--threads N] [--out DIR]
// dotnet run -c Release --project tools/experiments -- toy-text-states [--model DIR] [--captions N] [--world-seed W] [--out DIR]
// dotnet run -c Release --project tools/experiments -- dreambooth [--quick] [--out DIR] [--model DIR] [--evaluators DIR] [--seeds 0,1,2] [--subjects a,b] [--common-lr X|none] [--summarize]
if (args.Length > 0 && args[0] == "dreambooth") return DreamBoothTableCommand.Run(args[1..], RepoRoot());
if (args.Length > 0 && args[0] == "toy-shape-isolation") return ToyShapeIsolationExperiment.RunCommand(args[1..], RepoRoot());
if (args.Length > 0 && args[0] == "toy-text-states") return ToyTextStatesExperiment.RunCommand(args[1..], RepoRoot());
if (args.Length > 0 && args[0] == "toy-clip-shape") return ToyClipShapeExperiment.RunCommand(args[1..], RepoRoot());
if (args.Length == 0 || args[0] != "claims")
{
    Console.Error.WriteLine("usage: experiments claims [--quick] [--only " + string.Join(",", ClaimsReport.Order) + "] [--out DIR] [--workers N] [--model DIR]\n" +
                            "       experiments toy-clip-shape [--steps N] [--threads N] [--seed S] [--out DIR] [--quick]\n" +
                            "       experiments toy-shape-isolation --base RUN/base [--compare MODEL] [--images N] [--steps N] [--lr X] [--whiten-conditioning] [--prompts N] [--seed S] [--world-seed W] [--sizes large[,medium,small]] [--textures plain[,gradient,striped,checked]] [--masked-loss W] [--captions full|training] [--threads N] [--out DIR]\n" +
                            "       experiments toy-text-states [--model DIR] [--captions N] [--world-seed W] [--out DIR]\n" +
                            "       experiments dreambooth [--quick] [--out DIR] [--model DIR] [--evaluators DIR] [--seeds 0,1,2] [--subjects a,b] [--steps N] [--common-lr X|none] [--summarize]");
    return 2;
}

var config = args.Contains("--quick") ? ClaimsConfig.Quick : ClaimsConfig.Full;
string? outDir = null, model = null;
var only = new HashSet<string>(ClaimsReport.Order);
for (int i = 1; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--quick": break;
        case "--out": outDir = Next(); break;
        case "--workers": config = config with { Workers = int.Parse(Next()) }; break;
        case "--model": model = Next(); break;
        case "--planted-prompt": config = config with { Planted = config.Planted with { Prompt = Next() } }; break;
        case "--planted-held-out-prompt": config = config with { Planted = config.Planted with { HeldOutPrompt = Next() } }; break;
        case "--planted-span": config = config with { Planted = config.Planted with { Span = Enum.Parse<PlantedSpan>(Next(), ignoreCase: true) } }; break;
        case "--only":
            only = Next().Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
            if (only.Except(ClaimsReport.Order).FirstOrDefault() is { } bad) { Console.Error.WriteLine($"unknown section {bad}"); return 2; }
            break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}
string root = RepoRoot();
outDir ??= Path.Combine(root, "docs", "experiments", "adapter-claims" + (config.Name == "full" ? "" : "-" + config.Name));
Directory.CreateDirectory(outDir);
var commit = CommitInfo.Read(root);
string command = "claims" + (config.Name == "full" ? "" : " --" + config.Name) + (only.Count < ClaimsReport.Order.Length ? " --only " + string.Join(",", ClaimsReport.Order.Where(only.Contains)) : "");
Console.WriteLine($"commit {commit}; writing {outDir}");

// Runs are tiny: one intra-op thread per run, a few runs in parallel (--workers, default 2).
torch.set_num_threads(1);
var experiments = new (string Key, Func<ExperimentSection> Run)[]
{
    ("factorConditioning", () => FactorConditioningExperiment.Run(config, outDir, Console.Out)),
    ("gdExponent", () => GdExponentExperiment.Run(config, outDir, Console.Out)),
    ("gradientRank", () => GradientRankExperiment.Run(config, outDir, Console.Out)),
    ("capacity", () => CapacityExperiment.Run(config, outDir, Console.Out)),
    ("singloraSettings", () => SingLoraSettingsExperiment.Run(config, outDir, Console.Out)),
    ("planted", () => PlantedDiffusionExperiment.Run(config, outDir, model ?? EmbeddedDefaultModel.Folder, Console.Out)),
};
foreach (var (key, run) in experiments.Where(e => only.Contains(e.Key)))
{
    var section = run();
    ClaimsReport.WriteSection(outDir, section, commit, command, config);
    ClaimsReport.Assemble(outDir);
    Console.WriteLine($"{key}: {section.WallSeconds / 60:0.0} min");
}
Console.WriteLine($"wrote {outDir}");
return 0;

static string RepoRoot()
{
    for (var d = new DirectoryInfo(Environment.CurrentDirectory); d is not null; d = d.Parent)
        if (File.Exists(Path.Combine(d.FullName, "DiffusionPeft.sln"))) return d.FullName;
    return Environment.CurrentDirectory;
}

