using DiffusionPeft.Diffusion.Loading;
using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Tests.Pipelines;

/// <summary>End-to-end conformance with diffusers' StableDiffusionPipeline on the golden pipeline cases.</summary>
[Trait("Category", "Golden")]
public sealed class PipelineGoldenTests
{
    public static TheoryData<string> PipelineCases => GoldenData.CasesOfKind("pipeline");
    public static TheoryData<string> FolderCases => GoldenData.CasesOfKind("diffusers_folder");
    public static TheoryData<string> SingleFileCases => GoldenData.CasesOfKind("single_file");

    /// <summary>Kind "pipeline": components assembled from other golden cases, scheduler config inline.</summary>
    [Theory, MemberData(nameof(PipelineCases))]
    public void ComponentPipelineMatchesDiffusers(string caseName)
    {
        var config = (JsonObject)JsonNode.Parse(ConfigJson.QuoteNonFiniteLiterals(File.ReadAllText(GoldenData.FileOf(caseName, "config"))))!;
        var components = (JsonObject)config["components"]!;
        string CaseFile(string component, string file) => Path.Combine(GoldenData.Dir, (string)components[component]!, file);

        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(CaseFile("unet", "config.json")));
        unet.LoadWeights(CaseFile("unet", "weights.safetensors"));
        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(CaseFile("vae", "config.json")));
        vae.LoadWeights(CaseFile("vae", "weights.safetensors"));
        var text = new CLIPTextModel(ClipTextConfig.Load(CaseFile("text_encoder", "config.json")));
        using (var w = SafetensorsFile.Open(CaseFile("text_encoder", "weights.safetensors"))) text.LoadWeights(w);
        var tokenizer = ClipTokenizer.FromFiles(CaseFile("tokenizer", "vocab.json"), CaseFile("tokenizer", "merges.txt"));
        var schedulerConfig = SchedulerConfig.FromJson(new ConfigJson($"{caseName}/config.json components.scheduler", (JsonObject)components["scheduler"]!));

        using var model = new StableDiffusionModel
        {
            Unet = unet, Vae = vae, TextEncoder = text, Tokenizer = tokenizer, SchedulerConfig = schedulerConfig, Name = caseName,
        };
        foreach (var m in new TorchSharp.torch.nn.Module[] { unet, vae, text }) m.eval();
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        using var latents = io.Read("input.latents");
        using var scheduler = SchedulerFactory.FromConfig(schedulerConfig);
        using var run = GoldenPipelineRun.Execute(model, scheduler, (JsonObject)config["call"]!, latents);
        run.CompareWith(io, GoldenData.ToleranceOf(caseName), "intermediate.", "output.");
    }

    /// <summary>Kind "diffusers_folder": a real diffusers folder loaded in one call; each recorded run (scheduler swaps, weight variants).</summary>
    [Theory, MemberData(nameof(FolderCases))]
    public void DiffusersFolderRunsMatchDiffusers(string caseName)
    {
        var caseDir = Path.Combine(GoldenData.Dir, caseName);
        var config = (JsonObject)JsonNode.Parse(ConfigJson.QuoteNonFiniteLiterals(File.ReadAllText(Path.Combine(caseDir, "config.json"))))!;
        var folder = Path.Combine(caseDir, (string)config["model_folder"]!);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        int runs = 0;
        foreach (var (runName, runNode) in (JsonObject)config["runs"]!)
        {
            var run = (JsonObject)runNode!;
            string? variant = run["load_kwargs"]?["variant"] is JsonValue v ? (string)v! : null;
            using var model = StableDiffusionLoader.Load(folder, variant: variant);
            var schedulerConfig = run["scheduler_config_after_swap"] is JsonObject swapped
                ? SchedulerConfig.FromJson(new ConfigJson($"{caseName} run {runName}", swapped))
                : model.SchedulerConfig;
            using var scheduler = SchedulerFactory.FromConfig(schedulerConfig);
            using var latents = io.Read("input.latents");
            using var result = GoldenPipelineRun.Execute(model, scheduler, (JsonObject)run["call"]!, latents);
            result.CompareWith(io, tol, $"intermediate.{runName}.", $"output.{runName}.");
            runs++;
        }
        Assert.True(runs > 0, $"{caseName}: no runs in config.json");
    }

    /// <summary>
    /// Kind "single_file": an A1111-layout checkpoint written by diffusers' converter from a folder case; loading it and
    /// running the source case's first run must reproduce the source's fp16-variant outputs (the file holds fp16 UNet weights).
    /// Head counts cannot be read from weights, so the source folder supplies the configs and tokenizer, as diffusers was given them.
    /// </summary>
    [Theory, MemberData(nameof(SingleFileCases))]
    public void SingleFileCheckpointReproducesTheFp16FolderRun(string caseName)
    {
        var entry = GoldenData.Case(caseName);
        var source = (string)entry["source_case"]!;
        var sourceDir = Path.Combine(GoldenData.Dir, source);
        var sourceConfig = (JsonObject)JsonNode.Parse(ConfigJson.QuoteNonFiniteLiterals(File.ReadAllText(Path.Combine(sourceDir, "config.json"))))!;
        var folder = Path.Combine(sourceDir, (string)sourceConfig["model_folder"]!);
        var runs = (JsonObject)sourceConfig["runs"]!;
        var (variantRun, variantNode) = runs.First(r => r.Value!["load_kwargs"]?["variant"] is not null);

        using var model = StableDiffusionLoader.Load(GoldenData.FileOf(caseName, "checkpoint"), configsFrom: folder);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(source, "io"));
        using var latents = io.Read("input.latents");
        using var scheduler = SchedulerFactory.FromConfig(model.SchedulerConfig);
        using var run = GoldenPipelineRun.Execute(model, scheduler, (JsonObject)variantNode!["call"]!, latents);
        var tol = GoldenData.ToleranceOf(caseName);
        run.CompareWith(io, tol, $"intermediate.{variantRun}.", $"output.{variantRun}.");
    }
}
