using DiffusionPeft.Diffusion.Loading;
using System.Text.Json.Nodes;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.Pipelines;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Adapters;

/// <summary>
/// LoRA files made by other tools (kohya layout with alpha, diffusers/PEFT layout without), loaded into the base
/// folder case and run as diffusers 0.25 ran them: the pipeline outputs at every recorded scale and the fused weights.
/// </summary>
[Trait("Category", "Golden")]
public sealed class LoraGoldenTests
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("lora");

    internal static (string Folder, JsonObject Call) BaseRun(JsonObject entry)
    {
        var baseDir = Path.Combine(GoldenData.Dir, (string)entry["base_case"]!);
        var config = (JsonObject)JsonNode.Parse(ConfigJson.QuoteNonFiniteLiterals(File.ReadAllText(Path.Combine(baseDir, "config.json"))))!;
        // The recorded LoRA runs repeat the base case's plain run: the folder's own scheduler, no weight variant.
        var run = ((JsonObject)config["runs"]!).First(r => r.Value!["scheduler_config_after_swap"] is null && r.Value["load_kwargs"] is null).Value!;
        return (Path.Combine(baseDir, (string)config["model_folder"]!), (JsonObject)run["call"]!);
    }

    private static double ScaleOf(JsonNode run) => run["cross_attention_kwargs"]?["scale"] is JsonValue v ? (double)v : 1.0;

    [Theory, MemberData(nameof(Cases))]
    public void PipelineOutputsMatchDiffusersAtEveryRecordedScale(string caseName)
    {
        var entry = GoldenData.Case(caseName);
        var (folder, call) = BaseRun(entry);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        foreach (var (runName, run) in (JsonObject)entry["runs"]!)
        {
            using var model = StableDiffusionLoader.Load(folder);
            using var adapters = ActiveAdapters.Apply(model, [new AdapterSpec(GoldenData.FileOf(caseName, "lora"), ScaleOf(run!))]);
            Assert.Empty(adapters.Loaded[0].Result.UnknownKeys);
            using var scheduler = SchedulerFactory.FromConfig(model.SchedulerConfig);
            using var latents = io.Read("input.latents");
            using var result = GoldenPipelineRun.Execute(model, scheduler, call, latents);
            result.CompareWith(io, tol, $"intermediate.{runName}.", $"output.{runName}.", embedsPrefix: $"intermediate.{runName}.");
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void FusedWeightsMatchDiffusers(string caseName)
    {
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var fused = io.Entries.Keys.Where(k => k.StartsWith("fused.", StringComparison.Ordinal)).ToList();
        if (fused.Count == 0) return; // this case recorded no fused weights
        var entry = GoldenData.Case(caseName);
        var (folder, _) = BaseRun(entry);
        var tol = GoldenData.ToleranceOf(caseName);
        foreach (var group in fused.GroupBy(k => k.Split('.')[1]))
        {
            var run = entry["runs"]![group.Key]!;
            using var model = StableDiffusionLoader.Load(folder);
            using var adapters = ActiveAdapters.Apply(model, [new AdapterSpec(GoldenData.FileOf(caseName, "lora"), ScaleOf(run))]);
            var components = ActiveAdapters.Components(model);
            foreach (var root in components.Values)
                foreach (var (_, layer) in AdapterInjector.AdaptedLayers(root)) layer.MergeAll();
            foreach (var key in group)
            {
                // fused.<run>.<component>.<module path>.weight
                var rest = key[(key.IndexOf('.', 6) + 1)..];
                var component = rest[..rest.IndexOf('.')];
                var module = rest[(component.Length + 1)..^".weight".Length];
                var layer = (AdapterLayer)AdapterInjector.Find(components[component], module)!;
                var (atol, rtol) = tol.For(key);
                using var expected = io.Read(key);
                TensorAssert.Close(layer.weight, expected, atol, rtol, key);
            }
            foreach (var root in components.Values)
                foreach (var (_, layer) in AdapterInjector.AdaptedLayers(root)) layer.UnmergeAll();
        }
    }
}

/// <summary>Inference adapters on a real model: stacking several files and removing them again.</summary>
public sealed class ActiveAdaptersTests
{
    [Fact]
    public void StackedAdaptersAddUpAndRemovingThemRestoresTheBaseModelExactly()
    {
        var (folder, _) = LoraGoldenTests.BaseRun(GoldenData.Case("lora_kohya_tiny"));
        using var model = StableDiffusionLoader.Load(folder);
        var before = model.Unet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var kohya = GoldenData.FileOf("lora_kohya_tiny", "lora");
        var sample = randn(1, 4, 8, 8, generator: new Generator(1));
        var context = randn(1, 77, model.Unet.Config.CrossAttentionDim[0], generator: new Generator(2));
        using var _ = no_grad();
        var baseOut = model.Unet.forward(sample, tensor(500L), context);
        using (ActiveAdapters.Apply(model, [new AdapterSpec(kohya, 1.0), new AdapterSpec(kohya, -1.0)]))
        {
            // The same LoRA at +1 and -1 cancels: stacked adapters add up.
            // float rounding through the whole UNet; the LoRA alone moves the output by more than 1e-3
            TensorAssert.Close(model.Unet.forward(sample, tensor(500L), context), baseOut, 1e-4, 1e-4, "stacked +1/-1");
        }
        using (ActiveAdapters.Apply(model, [new AdapterSpec(kohya, 1.0)]))
            Assert.True(TensorAssert.MaxAbsDiff(model.Unet.forward(sample, tensor(500L), context), baseOut) > 1e-3);
        Assert.Empty(AdapterInjector.AdaptedLayers(model.Unet));
        foreach (var (k, v) in model.Unet.state_dict()) Assert.True(v.equal(before[k]).all().item<bool>(), k);
        TensorAssert.Close(model.Unet.forward(sample, tensor(500L), context), baseOut, 0, 0, "after removal");
    }
}
