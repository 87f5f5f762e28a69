using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;
using Module = TorchSharp.torch.nn.Module;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>What our adapter file says about itself (all of <c>__metadata__</c>, parsed).</summary>
public sealed record DpeftAdapterInfo(
    AdapterOptions Options, IReadOnlyList<(string Component, string Path, int Rank, double Alpha)> Targets,
    long RampStep, string BaseModel, string? Training);

/// <summary>
/// DiffusionPeft's own adapter file: one .safetensors; tensor names are <c>&lt;component&gt;.&lt;module path&gt;.&lt;tensor&gt;</c>
/// (<c>lora_A</c>, <c>lora_B</c>, <c>lora_magnitude_vector</c>, <c>singlora_A</c>); <c>__metadata__</c> holds the method
/// options, the targets with their rank/alpha, the SingLoRA ramp state, the base model identity (a hash of its
/// weights, supplied by the caller) and the training settings, as JSON strings.
/// </summary>
public static class DpeftAdapterFile
{
    public const string FormatTag = "dpeft-adapter";
    public const string FormatVersion = "1";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public static void Save(string path, IReadOnlyList<AdapterEntry> entries, string baseModel, string? trainingJson = null)
    {
        if (entries.Count == 0) throw new ArgumentException($"{path}: no adapters to save");
        var methods = entries.Select(e => e.Adapter.Method).Distinct().ToList();
        if (methods.Count != 1) throw new ArgumentException($"{path}: one file holds one method, got {string.Join(", ", methods)}");
        if (trainingJson is not null)
        {
            try { JsonDocument.Parse(trainingJson).Dispose(); }
            catch (JsonException ex) { throw new ArgumentException($"{path}: training settings are not valid JSON: {ex.Message}", nameof(trainingJson)); }
        }
        var first = entries[0].Adapter;
        long step = first is SingLoraLinear s ? s.StepCount : 0;
        var targets = new JsonArray(entries.Select(e => (JsonNode)new JsonObject
        {
            ["component"] = e.Component, ["path"] = e.Path, ["rank"] = e.Adapter.Rank, ["alpha"] = e.Adapter.Alpha,
            ["in_features"] = e.Adapter.InFeatures, ["out_features"] = e.Adapter.OutFeatures,
        }).ToArray());
        var o = first.Options;
        // The file names the layer: rsLoRA and LoRA+ are LoRA layers (rs_lora carries the scaling; LoRA+ was only an optimizer setting).
        var layerMethod = o.Method.IsLoraLayer() ? AdapterMethod.Lora : o.Method;
        var options = new JsonObject
        {
            ["method"] = layerMethod.ToString(), ["rank"] = o.Rank, ["alpha"] = o.Alpha, ["rs_lora"] = o.RsLora,
            ["init"] = o.Init.ToString(), ["dropout"] = o.Dropout, ["ramp_steps"] = o.RampSteps, ["init_scale"] = o.InitScale,
            ["sds_basis"] = o.SdsBasis.ToString(), ["sds_tolerance"] = o.SdsTolerance,
        };
        var meta = new Dictionary<string, string>
        {
            ["format"] = FormatTag,
            ["format_version"] = FormatVersion,
            ["method"] = layerMethod.ToString(),
            ["rank"] = o.Rank.ToString(CultureInfo.InvariantCulture),
            ["alpha"] = o.Alpha.ToString("R", CultureInfo.InvariantCulture),
            ["options"] = options.ToJsonString(Json),
            ["targets"] = targets.ToJsonString(Json),
            ["ramp"] = new JsonObject { ["step"] = step, ["ramp_steps"] = o.RampSteps, ["u"] = SingLoraLinear.RampAt(step, o.RampSteps) }.ToJsonString(Json),
            ["base_model"] = baseModel,
        };
        if (trainingJson is not null) meta["training"] = trainingJson;

        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>();
        foreach (var e in entries)
            foreach (var p in e.Adapter.AdapterParameters())
                tensors[e.Key + "." + p.Name] = AdapterComponents.Cpu(p.Tensor);
        SafetensorsWriter.Write(path, tensors, meta);
    }

    public static bool IsDpeftFile(IReadOnlyDictionary<string, string> metadata) =>
        metadata.TryGetValue("format", out var f) && f == FormatTag;

    public static DpeftAdapterInfo ReadInfo(string path)
    {
        var (_, meta) = SafetensorsFile.ReadHeader(path);
        return ParseInfo(path, meta);
    }

    private static DpeftAdapterInfo ParseInfo(string path, IReadOnlyDictionary<string, string> meta)
    {
        if (!IsDpeftFile(meta)) throw new InvalidDataException($"{path}: not a DiffusionPeft adapter file (metadata 'format' is not '{FormatTag}')");
        string Need(string key) => meta.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"{path}: metadata lacks '{key}'");
        try
        {
            var o = JsonNode.Parse(Need("options"))!.AsObject();
            // Files before the one-vocabulary change also carry sds_backward and sds_qr_every_forward: routes now chosen by the layer.
            var method = Enum.Parse<AdapterMethod>((string)o["method"]!);
            var options = new AdapterOptions
            {
                Method = method == AdapterMethod.Lora && (bool)o["rs_lora"]! ? AdapterMethod.RsLora : method,
                Rank = (int)o["rank"]!, Alpha = (double)o["alpha"]!,
                Init = Enum.Parse<LoraInit>((string)o["init"]!), Dropout = (double)o["dropout"]!,
                RampSteps = (long)o["ramp_steps"]!, InitScale = (double)o["init_scale"]!,
                SdsTolerance = (double)o["sds_tolerance"]!,
                SdsBasis = o["sds_basis"] is JsonValue basis ? Enum.Parse<SdsBasis>((string)basis!) : SdsBasis.Qr,
            };
            var targets = JsonNode.Parse(Need("targets"))!.AsArray()
                .Select(t => ((string)t!["component"]!, (string)t["path"]!, (int)t["rank"]!, (double)t["alpha"]!)).ToList();
            long step = (long)JsonNode.Parse(Need("ramp"))!["step"]!;
            return new DpeftAdapterInfo(options, targets, step, Need("base_model"), meta.GetValueOrDefault("training"));
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException or NullReferenceException or FormatException)
        {
            throw new InvalidDataException($"{path}: malformed DiffusionPeft adapter metadata: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Puts the file's adapters into the components (injecting them where the layer has no adapter of that name yet,
    /// loading into the existing one otherwise, e.g. to resume training) and restores the ramp state. Strict: every
    /// tensor the targets need must be present with its shape, and the file may hold no other tensor.
    /// </summary>
    public static (DpeftAdapterInfo Info, List<AdapterEntry> Entries) Load(
        string path, IReadOnlyDictionary<string, Module> components, string adapterName = "default", bool trainable = false,
        string? expectedBaseModel = null)
    {
        using var file = SafetensorsFile.Open(path);
        var info = ParseInfo(path, file.Metadata);
        if (expectedBaseModel is not null && expectedBaseModel != info.BaseModel)
            throw new InvalidDataException($"{path}: adapter was trained on base model '{info.BaseModel}', not '{expectedBaseModel}'");
        var entries = new List<AdapterEntry>();
        var used = new HashSet<string>();
        foreach (var (component, modulePath, rank, alpha) in info.Targets)
        {
            if (!components.TryGetValue(component, out var root))
                throw new InvalidDataException($"{path}: adapter targets component '{component}', which was not given");
            var options = info.Options with { Rank = rank, Alpha = alpha, Trainable = trainable };
            var host = AdapterInjector.Find(root, modulePath) as AdapterLayer;
            var adapter = host?.FindAdapter(adapterName) ?? AdapterInjector.Attach(root, modulePath, options, adapterName);
            if (adapter.Method != options.Method || adapter.Rank != rank)
                throw new InvalidDataException($"{path}: {component}.{modulePath} already has adapter '{adapterName}' ({adapter.Method}, rank {adapter.Rank}); the file has {options.Method}, rank {rank}");
            var entry = new AdapterEntry(component, modulePath, adapter);
            var tensors = adapter.AdapterParameters().Select(p => (Key: entry.Key + "." + p.Name, Target: (Tensor)p.Tensor)).ToList();
            StateDictLoader.LoadInto(file, tensors, message => new InvalidDataException(message));
            foreach (var p in adapter.AdapterParameters()) p.Tensor.requires_grad = trainable;
            used.UnionWith(tensors.Select(t => t.Key));
            if (adapter is SingLoraLinear s) s.StepCount = info.RampStep;
            adapter.InvalidateCaches();
            entries.Add(entry);
        }
        var extra = file.Entries.Keys.Where(k => !used.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (extra.Count > 0) throw new InvalidDataException($"{path}: tensors not covered by the metadata targets: {string.Join(", ", extra.Take(10))}{(extra.Count > 10 ? ", ..." : "")}");
        return (info, entries);
    }
}
