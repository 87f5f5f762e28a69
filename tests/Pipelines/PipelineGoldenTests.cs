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

    /// <summary>Kind "pipeline": components assembled from other golden cases, tokenizer settings and scheduler config inline.</summary>
    [Theory, MemberData(nameof(PipelineCases))]
    public void ComponentPipelineMatchesDiffusers(string caseName)
    {
        var config = ConfigJson.Load(GoldenData.FileOf(caseName, "config")).Root;
        var components = (JsonObject)config["components"]!;
        string ComponentCase(string component) =>
            (string?)components[component] ?? throw new Xunit.Sdk.XunitException($"{caseName}: config.json names no {component} case");
        string CaseFile(string component, string file) => GoldenData.FileOf(ComponentCase(component), file);

        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(CaseFile("unet", "config")));
        unet.LoadWeights(CaseFile("unet", "weights"));
        var vae = new AutoencoderKL(AutoencoderKLConfig.Load(CaseFile("vae", "config")));
        vae.LoadWeights(CaseFile("vae", "weights"));
        var text = new CLIPTextModel(ClipTextConfig.Load(CaseFile("text_encoder", "config")));
        using (var w = SafetensorsFile.Open(CaseFile("text_encoder", "weights"))) text.LoadWeights(w);
        var where = $"{caseName}/config.json components";
        var tokenizer = GoldenTokenizerSettings.FromCase(ComponentCase("tokenizer"), components["tokenizer_kwargs"],
            GoldenTokenizerSettings.Cleanup(components["tokenizer_text_cleanup"], where), where);
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
        var folder = GoldenFolderCase.Load(caseName);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        int runs = 0;
        foreach (var (runName, run) in folder.Runs)
        {
            using var loaded = StableDiffusionLoader.Load(folder.ModelFolder, variant: GoldenFolderCase.VariantOf(run));
            var model = WithCleanup(loaded, Path.Combine(folder.ModelFolder, "tokenizer"), folder.Cleanup);
            using var scheduler = SchedulerFactory.FromConfig(SchedulerOf(model, run, $"{caseName} run {runName}"));
            using var latents = io.Read("input.latents");
            using var result = GoldenPipelineRun.Execute(model, scheduler, (JsonObject)run["call"]!, latents);
            result.CompareWith(io, tol, $"intermediate.{runName}.", $"output.{runName}.");
            runs++;
        }
        Assert.True(runs > 0, $"{caseName}: no runs in config.json");
    }

    /// <summary>
    /// Kind "single_file": an A1111-layout checkpoint written by diffusers' converter from a folder case; loading it and
    /// running the source case's run that the case names must reproduce that run's outputs. Head counts cannot be read
    /// from weights, so the source folder supplies the configs and tokenizer (--configs-from), as diffusers was given them.
    /// </summary>
    [Theory, MemberData(nameof(SingleFileCases))]
    public void SingleFileCheckpointReproducesItsSourceRun(string caseName)
    {
        var source = GoldenFolderCase.Load(GoldenSingleFileCase.SourceCase(caseName));
        var runName = GoldenSingleFileCase.ReproducedRun(caseName);
        var run = source.Run(runName);

        using var loaded = StableDiffusionLoader.Load(GoldenData.FileOf(caseName, "checkpoint"), configsFrom: source.ModelFolder);
        var model = WithCleanup(loaded, Path.Combine(source.ModelFolder, "tokenizer"), source.Cleanup);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(source.Name, "io"));
        using var latents = io.Read("input.latents");
        using var scheduler = SchedulerFactory.FromConfig(SchedulerOf(model, run, $"{source.Name} run {runName}"));
        using var result = GoldenPipelineRun.Execute(model, scheduler, (JsonObject)run["call"]!, latents);
        result.CompareWith(io, GoldenData.ToleranceOf(caseName), $"intermediate.{runName}.", $"output.{runName}.");
    }

    /// <summary>The run's swapped scheduler (scheduler_config_after_swap) or the model's own.</summary>
    internal static SchedulerConfig SchedulerOf(StableDiffusionModel model, JsonObject run, string where) =>
        run["scheduler_config_after_swap"] is JsonObject swapped ? SchedulerConfig.FromJson(new ConfigJson(where, swapped)) : model.SchedulerConfig;

    /// <summary>The loaded model with its tokenizer folder read under the case's text cleanup (the loader reads it without ftfy).</summary>
    internal static StableDiffusionModel WithCleanup(StableDiffusionModel model, string tokenizerDir, ClipTextCleanup cleanup) =>
        model.Tokenizer.Options.Cleanup == cleanup ? model : new StableDiffusionModel
        {
            Unet = model.Unet, Vae = model.Vae, TextEncoder = model.TextEncoder, SchedulerConfig = model.SchedulerConfig, Name = model.Name,
            IdentityFile = model.IdentityFile, Device = model.Device, DType = model.DType,
            Tokenizer = ClipTokenizer.FromFolder(tokenizerDir, cleanup),
        };
}
