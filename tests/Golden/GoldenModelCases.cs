using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Tests.Golden;

/// <summary>
/// A golden case of kind "diffusers_folder" as its own files state it: the model folder, config.json's recorded runs
/// (call arguments, scheduler swaps, weight variants), the text cleanup, and the manifest's list of weight files.
/// </summary>
public sealed class GoldenFolderCase
{
    public string Name { get; }
    public string ModelFolder { get; }
    public JsonObject Config { get; }

    private GoldenFolderCase(string name, string modelFolder, JsonObject config)
    {
        Name = name; ModelFolder = modelFolder; Config = config;
    }

    public static GoldenFolderCase Load(string caseName)
    {
        var configPath = GoldenData.FileOf(caseName, "config");
        var config = ConfigJson.Load(configPath).Root;
        var files = GoldenData.Case(caseName)["files"] as JsonObject;
        string folder = files?["model_folder"] is JsonValue
            ? GoldenData.FileOf(caseName, "model_folder")
            : Path.Combine(Path.GetDirectoryName(configPath)!, (string?)config["model_folder"]
                ?? throw new Xunit.Sdk.XunitException($"{caseName}: neither the manifest's files nor config.json name the model folder"));
        return new GoldenFolderCase(caseName, folder, config);
    }

    public IEnumerable<(string Name, JsonObject Run)> Runs =>
        (Config["runs"] as JsonObject ?? throw new Xunit.Sdk.XunitException($"{Name}: config.json has no runs"))
        .Select(kv => (kv.Key, (JsonObject)kv.Value!));

    public JsonObject Run(string name) =>
        Config["runs"]?[name] as JsonObject ?? throw new Xunit.Sdk.XunitException($"{Name}: config.json has no run '{name}'");

    public static string? VariantOf(JsonObject run) => run["load_kwargs"]?["variant"] is JsonValue v ? (string?)v : null;

    /// <summary>The weight variants the recorded runs load (e.g. "fp16").</summary>
    public IReadOnlyList<string> Variants => Runs.Select(r => VariantOf(r.Run)).OfType<string>().Distinct().ToList();

    /// <summary>The run with the folder's own scheduler and main weights, or null.</summary>
    public (string Name, JsonObject Run)? PlainRun =>
        Runs.Where(r => r.Run["scheduler_config_after_swap"] is null && VariantOf(r.Run) is null).Select(r => ((string, JsonObject)?)r).FirstOrDefault();

    public ClipTextCleanup Cleanup => GoldenTokenizerSettings.Cleanup(Config["tokenizer_text_cleanup"], $"{Name}/config.json");

    /// <summary>Weight files the manifest lists, relative to the model folder (e.g. "unet/diffusion_pytorch_model.fp16.safetensors").</summary>
    public IReadOnlyList<string> WeightFiles =>
        (GoldenData.Case(Name)["weights"] as JsonObject)?.Select(kv => kv.Key).ToList()
        ?? throw new Xunit.Sdk.XunitException($"{Name}: the manifest lists no weight files");

    /// <summary>The components with weights: the first folder of each listed weight file.</summary>
    public IReadOnlyList<string> WeightComponents => WeightFiles.Select(f => f.Split('/')[0]).Distinct().ToList();

    /// <summary>The component's main weights file as listed ("&lt;component&gt;/&lt;stem&gt;.safetensors", no variant infix).</summary>
    public string MainWeightsFile(string component) =>
        WeightFiles.SingleOrDefault(f => f.StartsWith(component + "/", StringComparison.Ordinal) && Path.GetFileName(f).Count(ch => ch == '.') == 1)
        ?? throw new Xunit.Sdk.XunitException($"{Name}: the manifest lists no single main weights file for '{component}'");

    /// <summary>The file diffusers loads for <paramref name="component"/> with <paramref name="variant"/>: "&lt;stem&gt;.&lt;variant&gt;.safetensors" where listed, else the main file.</summary>
    public string WeightsFileFor(string component, string? variant)
    {
        var main = MainWeightsFile(component);
        if (variant is null) return main;
        var withVariant = $"{main[..^".safetensors".Length]}.{variant}.safetensors";
        return WeightFiles.Contains(withVariant) ? withVariant : main;
    }

    public string PathOf(string relativeFile) => Path.Combine(ModelFolder, relativeFile);
}

/// <summary>A golden case of kind "single_file": the folder case it was converted from, and which of its runs it reproduces.</summary>
public static class GoldenSingleFileCase
{
    public static string SourceCase(string caseName) =>
        (string?)GoldenData.Case(caseName)["source_case"] ?? throw new Xunit.Sdk.XunitException($"{caseName}: the manifest names no source_case");

    /// <summary>
    /// The source case's run whose outputs loading the file must reproduce: the &lt;run&gt; of the "output.&lt;run&gt;.*" /
    /// "intermediate.&lt;run&gt;.*" tensors in the case's tolerance, or named in its expected_outputs.
    /// </summary>
    public static string ReproducedRun(string caseName)
    {
        var entry = GoldenData.Case(caseName);
        var source = GoldenFolderCase.Load(SourceCase(caseName));
        var names = new List<string>();
        if (entry["tolerance"]?["per_tensor"] is JsonObject per) names.AddRange(per.Select(kv => kv.Key));
        if (entry["expected_outputs"] is JsonValue text) names.AddRange(Regex.Matches((string)text!, @"\b(?:output|intermediate)\.[\w.]+").Select(m => m.Value));
        var runs = names.Select(n => Regex.Match(n, @"^(?:output|intermediate)\.(?<run>[^.]+)\.[^.]+$"))
            .Where(m => m.Success).Select(m => m.Groups["run"].Value)
            .Where(r => source.Config["runs"]?[r] is not null).Distinct().ToList();
        return runs.Count == 1 ? runs[0]
            : throw new Xunit.Sdk.XunitException($"{caseName}: expected its tolerance or expected_outputs to name one run of {source.Name}, found [{string.Join(", ", runs)}]");
    }

    /// <summary>
    /// The model family the case's original config describes (its cond_stage_config: FrozenCLIPEmbedder is SD 1.x,
    /// FrozenOpenCLIPEmbedder SD 2.x), or else its key prefixes; null where the case says neither.
    /// </summary>
    public static ModelFamily? Family(string caseName)
    {
        var files = GoldenData.Case(caseName)["files"] as JsonObject;
        if (files?.ContainsKey("original_config") == true)
        {
            var yaml = File.ReadAllText(GoldenData.FileOf(caseName, "original_config"));
            if (yaml.Contains("FrozenOpenCLIPEmbedder", StringComparison.Ordinal)) return ModelFamily.SD2;
            if (yaml.Contains("FrozenCLIPEmbedder", StringComparison.Ordinal)) return ModelFamily.SD1;
        }
        if (GoldenData.Case(caseName)["key_prefixes"] is JsonObject prefixes)
        {
            if (prefixes.ContainsKey(LdmKeyMapping.OpenClipPrefix)) return ModelFamily.SD2;
            if (prefixes.ContainsKey(LdmKeyMapping.ClipPrefix)) return ModelFamily.SD1;
        }
        return null;
    }
}

/// <summary>One adapted module as a golden LoRA file stores it (kohya or diffusers/PEFT key layout).</summary>
public sealed record GoldenLoraModule(string Component, string Module, int Rank, double? Alpha)
{
    /// <summary>alpha / rank, with a missing alpha meaning alpha = rank (as every loader does).</summary>
    public double AlphaOverRank => (Alpha ?? Rank) / Rank;

    /// <summary>Whether this is the module at <paramref name="dottedPath"/> (kohya names write '_' for '.').</summary>
    public bool Is(string component, string dottedPath) =>
        component == Component && (Module == dottedPath || Module == dottedPath.Replace('.', '_'));
}

/// <summary>Reads a golden LoRA file's own tensors and metadata by the key layouts the golden README describes.</summary>
public static class GoldenLoraFile
{
    private static readonly Regex Kohya = new(@"^lora_(?<c>unet|te)_(?<m>.+)\.(?<p>lora_down\.weight|lora_up\.weight|alpha)$");
    private static readonly Regex Peft = new(@"^(?<c>unet|text_encoder)\.(?<m>.+)\.(?<p>lora_A\.weight|lora_B\.weight)$");

    public static IReadOnlyList<GoldenLoraModule> Modules(string path)
    {
        using var file = SafetensorsFile.Open(path);
        var byModule = new SortedDictionary<(string, string), (int? Rank, double? Alpha)>();
        foreach (var name in file.Names)
        {
            var m = Kohya.Match(name);
            if (!m.Success) m = Peft.Match(name);
            if (!m.Success) continue;
            var component = m.Groups["c"].Value == "te" ? "text_encoder" : m.Groups["c"].Value;
            var key = (component, m.Groups["m"].Value);
            var (rank, alpha) = byModule.GetValueOrDefault(key);
            switch (m.Groups["p"].Value)
            {
                case "lora_down.weight" or "lora_A.weight": rank = (int)file.Entry(name).Shape[0]; break;
                case "alpha": alpha = file.Read(name).to_type(TorchSharp.torch.ScalarType.Float64).item<double>(); break;
            }
            byModule[key] = (rank, alpha);
        }
        return byModule.Select(kv => new GoldenLoraModule(kv.Key.Item1, kv.Key.Item2,
            kv.Value.Rank ?? throw new InvalidDataException($"{path}: module {kv.Key.Item2} has no down / A matrix"), kv.Value.Alpha)).ToList();
    }

    public static IReadOnlyDictionary<string, string> Metadata(string path)
    {
        using var file = SafetensorsFile.Open(path);
        return file.Metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
    }

    /// <summary>The name the importer and `adapter inspect` give the format a lora case states ("kohya", "diffusers_peft"); null for one they do not know.</summary>
    public static string? FormatName(string caseName) => (string?)GoldenData.Case(caseName)["format"] switch
    {
        "kohya" => "kohya",
        "diffusers_peft" or "diffusers" or "peft" => "diffusers",
        _ => null,
    };

    /// <summary>The recorded scale of a lora case's run: cross_attention_kwargs.scale, 1.0 when none was passed.</summary>
    public static double ScaleOf(JsonNode run) => run["cross_attention_kwargs"]?["scale"] is JsonValue v ? (double)v : 1.0;
}
