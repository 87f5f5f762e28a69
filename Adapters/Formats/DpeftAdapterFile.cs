using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;
using Module = TorchSharp.torch.nn.Module;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>What our adapter file says about itself (all of <c>__metadata__</c>, parsed and validated).</summary>
public sealed record DpeftAdapterInfo(
    AdapterOptions Options, IReadOnlyList<(string Component, string Path, int Rank, double Alpha)> Targets,
    long RampStep, string BaseModel, string? Training)
{
    /// <summary>Per target, the layer's (in, out) features as the file records them; null in files older than that record.</summary>
    public IReadOnlyList<(long In, long Out)?> LayerShapes { get; init; } = [];
}

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

    public static DpeftAdapterInfo ReadInfo(string path) => InvalidInput.Guard(() => ParseInfo(path, SafetensorsFile.ReadHeader(path).Metadata));

    /// <summary>Adapter ranks above this are not low-rank; the bound keeps rank arithmetic away from overflow.</summary>
    public const int MaxRank = 1 << 16;

    private static readonly JsonDocumentOptions StrictJson = new() { AllowDuplicateProperties = false };

    private static DpeftAdapterInfo ParseInfo(string path, IReadOnlyDictionary<string, string> meta)
    {
        if (!IsDpeftFile(meta)) throw new InvalidDataException($"{path}: not a DiffusionPeft adapter file (metadata 'format' is not '{FormatTag}')");
        string Need(string key) => meta.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"{path}: metadata lacks '{key}'");
        InvalidDataException Bad(string where, string fault) => new($"{path}: metadata {where} {fault}");
        JsonNode Parse(string key)
        {
            try { return JsonNode.Parse(Need(key), documentOptions: StrictJson) ?? throw Bad($"'{key}'", "is null"); }
            catch (JsonException ex) { throw Bad($"'{key}'", $"is not valid JSON: {ex.Message}"); }
        }
        JsonObject Object(JsonNode? n, string where) => n as JsonObject ?? throw Bad(where, "should be a JSON object");

        var o = Object(Parse("options"), "'options'");
        // The file names the layer and rs_lora its scaling. Files before the one-vocabulary change also carry
        // sds_backward and sds_qr_every_forward: the layer now chooses its routes, so they are ignored.
        var method = EnumOf<AdapterMethod>(o, "method");
        var options = new AdapterOptions
        {
            Method = method == AdapterMethod.Lora && BoolOf(o, "rs_lora") ? AdapterMethod.RsLora : method,
            Rank = IntOf(o, "rank", 1, MaxRank), Alpha = FiniteOf(o, "alpha"),
            Init = EnumOf<LoraInit>(o, "init"), Dropout = FiniteOf(o, "dropout"),
            RampSteps = LongOf(o, "ramp_steps", 0), InitScale = FiniteOf(o, "init_scale"),
            SdsTolerance = FiniteOf(o, "sds_tolerance"),
            SdsBasis = o["sds_basis"] is null ? SdsBasis.Qr : EnumOf<SdsBasis>(o, "sds_basis"),
        };
        try { options.Validate(); }
        catch (ArgumentOutOfRangeException ex) { throw Bad("'options'", $"are invalid: {ex.Message}"); }

        var targets = new List<(string, string, int, double)>();
        var shapes = new List<(long, long)?>();
        if (Parse("targets") is not JsonArray list || list.Count == 0) throw Bad("'targets'", "should be a non-empty JSON array");
        for (int i = 0; i < list.Count; i++)
        {
            var t = Object(list[i], $"'targets' entry {i}");
            string component = TextOf(t, "component", $"targets[{i}]"), modulePath = TextOf(t, "path", $"targets[{i}]");
            targets.Add((component, modulePath, IntOf(t, "rank", 1, MaxRank, $"targets[{i}]"), FiniteOf(t, "alpha", $"targets[{i}]")));
            bool hasIn = t["in_features"] is not null, hasOut = t["out_features"] is not null;
            if (hasIn != hasOut) throw Bad($"targets[{i}]", "records only one of in_features and out_features");
            shapes.Add(hasIn ? (IntOf(t, "in_features", 1, int.MaxValue, $"targets[{i}]"), IntOf(t, "out_features", 1, int.MaxValue, $"targets[{i}]")) : null);
        }
        long step = LongOf(Object(Parse("ramp"), "'ramp'"), "step", 0, "'ramp'");
        return new DpeftAdapterInfo(options, targets, step, Need("base_model"), meta.GetValueOrDefault("training")) { LayerShapes = shapes };

        JsonValue Value(JsonObject obj, string key, string where) =>
            obj[key] as JsonValue ?? throw Bad(where, $"lacks '{key}' (or it is not a single value)");
        T EnumOf<T>(JsonObject obj, string key, string where = "'options'") where T : struct, Enum =>
            Value(obj, key, where).TryGetValue<string>(out var text) && Enum.GetNames<T>().Contains(text, StringComparer.Ordinal) ? Enum.Parse<T>(text)
                : throw Bad(where, $"'{key}' should be one of {string.Join(", ", Enum.GetNames<T>())}");
        int IntOf(JsonObject obj, string key, int min, int max, string where = "'options'") => (int)LongOf(obj, key, min, where, max);
        long LongOf(JsonObject obj, string key, long min, string where = "'options'", long max = long.MaxValue) =>
            Value(obj, key, where).TryGetValue<long>(out var v) && v >= min && v <= max ? v
                : throw Bad(where, $"'{key}' should be an integer in {min}..{max}, got {obj[key]?.ToJsonString()}");
        double FiniteOf(JsonObject obj, string key, string where = "'options'") =>
            Value(obj, key, where).TryGetValue<double>(out var v) && double.IsFinite(v) ? v
                : throw Bad(where, $"'{key}' should be a finite number, got {obj[key]?.ToJsonString()}");
        bool BoolOf(JsonObject obj, string key, string where = "'options'") =>
            Value(obj, key, where).TryGetValue<bool>(out var v) ? v : throw Bad(where, $"'{key}' should be true or false");
        string TextOf(JsonObject obj, string key, string where) =>
            Value(obj, key, where).TryGetValue<string>(out var v) && v.Length > 0 ? v : throw Bad(where, $"'{key}' should be a non-empty string");
    }

    /// <summary>
    /// Puts the file's adapters into the components (injecting them where the layer has no adapter of that name yet,
    /// loading into the existing one otherwise, e.g. to resume training) and restores the ramp state. Strict: every
    /// tensor the targets need must be present with its shape, and the file may hold no other tensor.
    /// </summary>
    public static (DpeftAdapterInfo Info, List<AdapterEntry> Entries) Load(
        string path, IReadOnlyDictionary<string, Module> components, string adapterName = "default", bool trainable = false,
        string? expectedBaseModel = null) =>
        InvalidInput.Guard(() => LoadChecked(path, components, adapterName, trainable, expectedBaseModel));

    private static (DpeftAdapterInfo Info, List<AdapterEntry> Entries) LoadChecked(
        string path, IReadOnlyDictionary<string, Module> components, string adapterName, bool trainable, string? expectedBaseModel)
    {
        using var file = SafetensorsFile.Open(path);
        var info = ParseInfo(path, file.Metadata);
        if (expectedBaseModel is not null && expectedBaseModel != info.BaseModel)
            throw new InvalidDataException($"{path}: adapter was trained on base model '{info.BaseModel}', not '{expectedBaseModel}'");
        var entries = new List<AdapterEntry>();
        var used = new HashSet<string>();
        var attached = new AttachedAdapters();
        try
        {
            for (int i = 0; i < info.Targets.Count; i++)
            {
                var (component, modulePath, rank, alpha) = info.Targets[i];
                if (!components.TryGetValue(component, out var root))
                    throw new InvalidDataException($"{path}: adapter targets component '{component}', which was not given");
                var options = info.Options with { Rank = rank, Alpha = alpha, Trainable = trainable };
                string key = AdapterEntry.KeyOf(component, modulePath);
                var (dOut, dIn) = TargetLayer(path, root, key, modulePath);
                if (info.LayerShapes.ElementAtOrDefault(i) is { } recorded && (recorded.In != dIn || recorded.Out != dOut))
                    throw new InvalidDataException($"{path}: {key} was trained on a {recorded.In} -> {recorded.Out} layer; this model's is {dIn} -> {dOut}");
                EnsureRankFitsTensors(path, file, key, rank, dIn, dOut);
                var host = AdapterInjector.Find(root, modulePath) as AdapterLayer;
                var adapter = host?.FindAdapter(adapterName) ?? attached.Attach(root, modulePath, options, adapterName, $"{path}: {key}");
                if (adapter.Method != options.Method || adapter.Rank != rank)
                    throw new InvalidDataException($"{path}: {component}.{modulePath} already has adapter '{adapterName}' ({adapter.Method}, rank {adapter.Rank}); the file has {options.Method}, rank {rank}");
                var entry = new AdapterEntry(component, modulePath, adapter);
                var tensors = adapter.AdapterParameters().Select(p => (Key: entry.Key + "." + p.Name, Target: (Tensor)p.Tensor)).ToList();
                StateDictLoader.LoadInto(file, tensors, message => new InvalidDataException(message));
                foreach (var (name, tensor) in tensors) FiniteTensors.Ensure(path, name, tensor);
                foreach (var p in adapter.AdapterParameters()) p.Tensor.requires_grad = trainable;
                used.UnionWith(tensors.Select(t => t.Key));
                if (adapter is SingLoraLinear s) s.StepCount = info.RampStep;
                adapter.InvalidateCaches();
                entries.Add(entry);
            }
            var extra = file.Entries.Keys.Where(k => !used.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
            if (extra.Count > 0) throw new InvalidDataException($"{path}: tensors not covered by the metadata targets: {string.Join(", ", extra.Take(10))}{(extra.Count > 10 ? ", ..." : "")}");
        }
        catch
        {
            attached.Rollback();
            throw;
        }
        return (info, entries);
    }

    /// <summary>(out, in) features of the Linear (or adapted Linear) a target names, or an error naming the file and the target.</summary>
    private static (long Out, long In) TargetLayer(string path, Module root, string key, string modulePath) =>
        AdapterInjector.Find(root, modulePath) switch
        {
            AdapterLayer a => (a.OutFeatures, a.InFeatures),
            TorchSharp.Modules.Linear { weight: { } w } => (w.shape[0], w.shape[1]),
            null => throw new InvalidDataException($"{path}: target '{key}' is not a module of the model"),
            var other => throw new InvalidDataException($"{path}: target '{key}' is a {other.GetType().Name}, not a Linear layer"),
        };

    /// <summary>
    /// Every method keeps at least rank x max(in, out) values per layer, so a rank the file's own tensors cannot hold is
    /// refused before the layer is built (a hostile rank would otherwise allocate far more than the file's size).
    /// </summary>
    internal static void EnsureRankFitsTensors(string path, SafetensorsFile file, string key, long rank, long dIn, long dOut)
    {
        double held = file.Entries.Values.Where(e => e.Name.StartsWith(key + ".", StringComparison.Ordinal)).Sum(e => (double)e.NumElements);
        if ((double)rank * Math.Max(dIn, dOut) > held)
            throw new InvalidDataException($"{path}: {key}: rank {rank} on a {dIn} -> {dOut} layer needs at least {(double)rank * Math.Max(dIn, dOut):N0} values, but the file holds {held:N0} for it");
    }
}
