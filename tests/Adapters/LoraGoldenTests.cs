using DiffusionPeft.Diffusion.Loading;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Adapters;

/// <summary>
/// LoRA files made by other tools (kohya layout with alpha, diffusers/PEFT layout without), loaded into the base
/// folder case and run as diffusers 0.25 ran them: the pipeline outputs at every recorded scale and the fused weights.
/// </summary>
[Trait("Category", "Golden")]
public sealed class LoraGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("lora");

    /// <summary>The lora case's base folder case.</summary>
    internal static GoldenFolderCase BaseCase(string caseName) =>
        GoldenFolderCase.Load((string?)GoldenData.Case(caseName)["base_case"] ?? throw new Xunit.Sdk.XunitException($"{caseName}: the manifest names no base_case"));

    /// <summary>
    /// The base case's run a recorded LoRA run repeats (its call, scheduler swap and weight variant): the run it names
    /// ("... as &lt;base&gt; runs.&lt;name&gt;"), else the base case's plain run; a call the LoRA run records itself wins.
    /// </summary>
    internal static JsonObject BaseRun(string caseName, JsonNode run)
    {
        var baseCase = BaseCase(caseName);
        JsonObject baseRun;
        if (run["call"] is JsonValue text && Regex.Match((string)text!, @"\bruns\.(?<run>\w+)") is { Success: true } m) baseRun = baseCase.Run(m.Groups["run"].Value);
        else baseRun = baseCase.PlainRun?.Run ?? throw new Xunit.Sdk.XunitException($"{caseName}: the run names no base run and {baseCase.Name} has no plain run");
        if (run["call"] is not JsonObject own) return baseRun;
        var merged = (JsonObject)baseRun.DeepClone();
        merged["call"] = own.DeepClone();
        return merged;
    }

    [Theory, MemberData(nameof(Cases))]
    public void PipelineOutputsMatchDiffusersAtEveryRecordedScale(string caseName)
    {
        var entry = GoldenData.Case(caseName);
        var baseCase = BaseCase(caseName);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        int runs = 0;
        foreach (var (runName, run) in entry["runs"] as JsonObject ?? throw new Xunit.Sdk.XunitException($"{caseName}: no runs in the manifest"))
        {
            var baseRun = BaseRun(caseName, run!);
            using var loaded = StableDiffusionLoader.Load(baseCase.ModelFolder, variant: GoldenFolderCase.VariantOf(baseRun));
            var model = PipelineGoldenTests.WithCleanup(loaded, Path.Combine(baseCase.ModelFolder, "tokenizer"), baseCase.Cleanup);
            using var adapters = ActiveAdapters.Apply(model, [new AdapterSpec(GoldenData.FileOf(caseName, "lora"), GoldenLoraFile.ScaleOf(run!))]);
            Assert.Empty(adapters.Loaded[0].Result.UnknownKeys);
            using var scheduler = SchedulerFactory.FromConfig(PipelineGoldenTests.SchedulerOf(model, baseRun, $"{caseName} run {runName}"));
            using var latents = io.Read("input.latents");
            using var result = GoldenPipelineRun.Execute(model, scheduler, (JsonObject)baseRun["call"]!, latents);
            result.CompareWith(io, tol, $"intermediate.{runName}.", $"output.{runName}.");
            runs++;
        }
        Assert.True(runs > 0, $"{caseName}: no runs in the manifest");
    }

    [Theory, MemberData(nameof(Cases))]
    public void FusedWeightsMatchDiffusers(string caseName)
    {
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var fused = io.Entries.Keys.Where(k => k.StartsWith("fused.", StringComparison.Ordinal)).ToList();
        if (fused.Count == 0)
        {
            output.WriteLine($"skipped: {caseName} recorded no fused weights");
            return;
        }
        var entry = GoldenData.Case(caseName);
        var folder = BaseCase(caseName).ModelFolder;
        var tol = GoldenData.ToleranceOf(caseName);
        foreach (var group in fused.GroupBy(k => k.Split('.')[1]))
        {
            var run = entry["runs"]?[group.Key] ?? throw new Xunit.Sdk.XunitException($"{caseName}: fused weights of run '{group.Key}', which the manifest does not describe");
            using var model = StableDiffusionLoader.Load(folder);
            using var adapters = ActiveAdapters.Apply(model, [new AdapterSpec(GoldenData.FileOf(caseName, "lora"), GoldenLoraFile.ScaleOf(run))]);
            var components = ActiveAdapters.Components(model);
            foreach (var root in components.Values)
                foreach (var (_, layer) in AdapterInjector.AdaptedLayers(root)) layer.MergeAll();
            foreach (var key in group)
            {
                var (component, module) = FusedKey(key);
                var layer = (AdapterLayer)AdapterInjector.Find(components[component], module)!;
                var (atol, rtol) = tol.For(key);
                using var expected = io.Read(key);
                TensorAssert.Close(layer.weight, expected, atol, rtol, key);
            }
            foreach (var root in components.Values)
                foreach (var (_, layer) in AdapterInjector.AdaptedLayers(root)) layer.UnmergeAll();
        }
    }

    /// <summary>fused.&lt;run&gt;.&lt;component&gt;.&lt;module path&gt;.weight → (component, module path).</summary>
    internal static (string Component, string Module) FusedKey(string key)
    {
        var rest = key[(key.IndexOf('.', "fused.".Length) + 1)..];
        var component = rest[..rest.IndexOf('.')];
        return (component, rest[(component.Length + 1)..^".weight".Length]);
    }
}

/// <summary>Inference adapters on a real model: stacking several files and removing them again.</summary>
[Trait("Category", "Golden")]
public sealed class ActiveAdaptersTests
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("lora");

    [Theory, MemberData(nameof(Cases))]
    public void StackedAdaptersAddUpAndRemovingThemRestoresTheBaseModelExactly(string caseName)
    {
        using var model = StableDiffusionLoader.Load(LoraGoldenTests.BaseCase(caseName).ModelFolder);
        var before = model.Unet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var lora = GoldenData.FileOf(caseName, "lora");
        var config = model.Unet.Config;
        var sample = randn(1, config.InChannels, config.SampleSize, config.SampleSize, generator: new Generator(1));
        var context = randn(1, 77, config.CrossAttentionDim[0], generator: new Generator(2));
        using var _ = no_grad();
        var baseOut = model.Unet.forward(sample, tensor(500L), context);
        // This test's own bounds: float rounding through the whole UNet must stay below `cancelled`, and the LoRA
        // alone must move the output by more than `moved` (ten times that), or cancelling could not be told from no effect.
        const double cancelled = 1e-4, moved = 1e-3;
        using (ActiveAdapters.Apply(model, [new AdapterSpec(lora, 1.0), new AdapterSpec(lora, -1.0)]))
            TensorAssert.Close(model.Unet.forward(sample, tensor(500L), context), baseOut, cancelled, cancelled, "stacked +1/-1");
        using (ActiveAdapters.Apply(model, [new AdapterSpec(lora, 1.0)]))
            Assert.True(TensorAssert.MaxAbsDiff(model.Unet.forward(sample, tensor(500L), context), baseOut) > moved, $"{caseName}: the LoRA barely changes the UNet output");
        Assert.Empty(AdapterInjector.AdaptedLayers(model.Unet));
        foreach (var (k, v) in model.Unet.state_dict()) Assert.True(v.equal(before[k]).all().item<bool>(), k);
        TensorAssert.Close(model.Unet.forward(sample, tensor(500L), context), baseOut, 0, 0, "after removal");
    }
}
