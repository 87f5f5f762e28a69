using System.Text.RegularExpressions;
using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;
using Module = TorchSharp.torch.nn.Module;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>The outcome of loading another tool's LoRA file: what was applied and what was not.</summary>
public sealed record LoraImportResult(
    string Format, IReadOnlyList<AdapterEntry> Layers, IReadOnlyList<string> UnknownKeys, IReadOnlyList<string> UnresolvedModules)
{
    public IEnumerable<string> Warnings =>
        UnknownKeys.Select(k => $"unrecognised tensor '{k}' ignored")
            .Concat(UnresolvedModules.Select(m => $"module '{m}' is not a Linear layer of the model; its tensors were ignored"));
}

/// <summary>
/// Loads LoRA/DoRA files for inference: our format, diffusers/PEFT (<c>lora_A/lora_B</c>, <c>lora.down/up</c>,
/// <c>lora_linear_layer.down/up</c>, old attention-processor names, <c>unet.</c>/<c>text_encoder.</c> prefixes) and kohya
/// (<c>lora_unet_</c>/<c>lora_te_</c>, names resolved against the model's own module paths). Semantics follow diffusers 0.25:
/// each layer computes W x + b + scale · (alpha / rank) · up(down(x)); alpha is per module, missing alpha = rank.
/// Unrecognised keys and modules that are not in the model are reported, never silently dropped.
/// </summary>
public static class LoraImporter
{
    private enum Part { Down, Up, Alpha, Magnitude, DoraScale }

    private sealed class Group
    {
        public readonly Dictionary<Part, string> Keys = new();
    }

    private static readonly Regex Kohya = new(@"^lora_(unet|te|te1|te2)_(.+?)\.(lora_down\.weight|lora_up\.weight|alpha|dora_scale)$", RegexOptions.CultureInvariant);

    private static readonly (string Suffix, Part Part)[] DottedSuffixes =
    [
        (".lora_A.weight", Part.Down), (".lora_B.weight", Part.Up),
        (".lora.down.weight", Part.Down), (".lora.up.weight", Part.Up),
        (".lora_linear_layer.down.weight", Part.Down), (".lora_linear_layer.up.weight", Part.Up),
        (".lora_down.weight", Part.Down), (".lora_up.weight", Part.Up),
        (".lora_magnitude_vector.weight", Part.Magnitude), (".lora_magnitude_vector", Part.Magnitude),
        (".dora_scale", Part.DoraScale), (".alpha", Part.Alpha),
        (".down.weight", Part.Down), (".up.weight", Part.Up),   // old processor layout: <attn>.processor.to_q_lora.down.weight
    ];

    private static readonly Regex PeftAdapterName = new(@"\.(lora_A|lora_B)\.[^.]+\.weight$", RegexOptions.CultureInvariant);
    private static readonly Regex OldProcessor = new(@"(\.processor)?\.to_(q|k|v|out)_lora$", RegexOptions.CultureInvariant);

    /// <summary>Loads a LoRA file into the components ("unet", "text_encoder") as an inference adapter with user weight <paramref name="scale"/>.</summary>
    public static LoraImportResult Load(string path, IReadOnlyDictionary<string, Module> components, double scale = 1.0, string adapterName = "default") =>
        InvalidInput.Guard(() => LoadChecked(path, components, scale, adapterName));

    /// <summary>A kohya alpha: one finite value (a 0-d or one-element tensor of any dtype), or an error naming the file and the tensor.</summary>
    internal static double ReadAlpha(string path, SafetensorsFile file, string name)
    {
        if (file.Entry(name).NumElements != 1)
            throw new InvalidDataException($"{path}: alpha '{name}' has shape [{string.Join(", ", file.Entry(name).Shape)}], not a single value");
        using var t = file.Read(name, ScalarType.Float64);
        double alpha = t.item<double>();
        return double.IsFinite(alpha) ? alpha : throw new InvalidDataException($"{path}: alpha '{name}' is {alpha}, not a finite number");
    }

    private static LoraImportResult LoadChecked(string path, IReadOnlyDictionary<string, Module> components, double scale, string adapterName)
    {
        using (var probe = SafetensorsFile.Open(path))
            if (DpeftAdapterFile.IsDpeftFile(probe.Metadata))
            {
                var (_, entries) = DpeftAdapterFile.Load(path, components, adapterName);
                foreach (var e in entries) e.Adapter.Scale = scale;
                return new LoraImportResult("dpeft", entries, [], []);
            }

        using var file = SafetensorsFile.Open(path);
        var groups = new Dictionary<(string Component, string Path), Group>();
        var unknown = new List<string>();
        var unresolved = new SortedSet<string>(StringComparer.Ordinal);
        var lookup = components.ToDictionary(c => c.Key, c => ModuleIndex.Of(c.Value));
        bool sawKohya = false;

        foreach (var key in file.Entries.Keys.OrderBy(k => k, StringComparer.Ordinal))
        {
            if (!TryParse(path, key, lookup, out var component, out var modulePath, out var part, out bool kohya, out var rawModule))
            {
                if (rawModule is not null) unresolved.Add(rawModule); else unknown.Add(key);
                continue;
            }
            sawKohya |= kohya;
            var g = groups.TryGetValue((component, modulePath), out var existing) ? existing : groups[(component, modulePath)] = new Group();
            if (!g.Keys.TryAdd(part, key))
                throw new InvalidDataException($"{path}: tensors '{g.Keys[part]}' and '{key}' both give the {part} of {component}.{modulePath}");
        }

        var applied = new List<AdapterEntry>();
        var attached = new AttachedAdapters();
        try
        {
            foreach (var ((component, modulePath), g) in groups.OrderBy(g => g.Key.Component).ThenBy(g => g.Key.Path, StringComparer.Ordinal))
            {
                string where = $"{path}: {component}.{modulePath}";
                if (!g.Keys.ContainsKey(Part.Down) || !g.Keys.ContainsKey(Part.Up))
                {
                    unknown.AddRange(g.Keys.Values);   // an alpha or magnitude without its matrices
                    continue;
                }
                using var scope = NewDisposeScope();
                var down = file.Read(g.Keys[Part.Down]);
                var up = file.Read(g.Keys[Part.Up]);
                var root = components[component];
                var host = AdapterInjector.Find(root, modulePath)!;
                var baseWeight = host is AdapterLayer al ? al.weight : ((TorchSharp.Modules.Linear)host).weight!;
                var (dOut, dIn) = (baseWeight.shape[0], baseWeight.shape[1]);
                if (down.dim() != 2 || up.dim() != 2 || down.shape[1] != dIn || up.shape[0] != dOut || up.shape[1] != down.shape[0])
                    throw new InvalidDataException($"{where}: down [{string.Join(", ", down.shape)}] / up [{string.Join(", ", up.shape)}] do not fit a {dIn} -> {dOut} layer");
                if (down.shape[0] is < 1 or > DpeftAdapterFile.MaxRank)
                    throw new InvalidDataException($"{where}: rank {down.shape[0]} (down [{string.Join(", ", down.shape)}]) is not in 1..{DpeftAdapterFile.MaxRank}");
                int rank = (int)down.shape[0];
                double alpha = g.Keys.TryGetValue(Part.Alpha, out var ak) ? ReadAlpha(path, file, ak) : rank;
                Tensor? magnitude = null;
                if (g.Keys.TryGetValue(Part.Magnitude, out var mk)) magnitude = file.Read(mk);
                else if (g.Keys.TryGetValue(Part.DoraScale, out var dk))
                {
                    magnitude = file.Read(dk);
                    if (!(magnitude.dim() == 2 && magnitude.shape[1] == 1) && magnitude.dim() != 1)
                        throw new InvalidDataException($"{where}: dora_scale is [{string.Join(", ", magnitude.shape)}]; only the per-output form (d_out, 1) is supported");
                }
                if (magnitude is not null && magnitude.numel() != dOut)
                    throw new InvalidDataException($"{where}: DoRA magnitude has {magnitude.numel()} entries, the layer has {dOut} outputs");
                FiniteTensors.Ensure(path, g.Keys[Part.Down], down);
                FiniteTensors.Ensure(path, g.Keys[Part.Up], up);
                if (magnitude is not null) FiniteTensors.Ensure(path, g.Keys.GetValueOrDefault(Part.Magnitude) ?? g.Keys[Part.DoraScale], magnitude);
                var options = new AdapterOptions
                {
                    Method = magnitude is null ? AdapterMethod.Lora : AdapterMethod.Dora, Rank = rank, Alpha = alpha, Trainable = false,
                };
                var adapter = (LowRankPairLayer)attached.Attach(root, modulePath, options, adapterName, where);
                using (no_grad())
                {
                    adapter.lora_A.copy_(down);
                    adapter.lora_B.copy_(up);
                    if (magnitude is not null) ((DoraLinear)adapter).lora_magnitude_vector.copy_(magnitude.flatten());
                }
                adapter.Scale = scale;
                applied.Add(new AdapterEntry(component, modulePath, adapter));
            }
            if (applied.Count == 0)
                throw new InvalidDataException($"{path}: no LoRA layer of the file fits the model (unrecognised keys: {string.Join(", ", unknown.Take(5))}; unresolved modules: {string.Join(", ", unresolved.Take(5))})");
        }
        catch
        {
            attached.Rollback();
            throw;
        }
        return new LoraImportResult(sawKohya ? "kohya" : "diffusers", applied, unknown, unresolved.ToList());
    }

    private static bool TryParse(string path, string key, Dictionary<string, ModuleIndex> lookup, out string component, out string modulePath, out Part part, out bool kohya, out string? rawModule)
    {
        component = modulePath = ""; part = default; kohya = false; rawModule = null;
        var m = Kohya.Match(key);
        if (m.Success)
        {
            kohya = true;
            component = m.Groups[1].Value switch { "unet" => AdapterComponents.UNet, "te2" => "text_encoder_2", _ => AdapterComponents.TextEncoder };
            part = m.Groups[3].Value switch
            {
                "lora_down.weight" => Part.Down, "lora_up.weight" => Part.Up, "alpha" => Part.Alpha, _ => Part.DoraScale,
            };
            rawModule = m.Groups[1].Value + ":" + m.Groups[2].Value;
            if (!lookup.TryGetValue(component, out var index)) return false;
            if (!index.ByKohyaName.TryGetValue(m.Groups[2].Value, out var resolved)) return false;
            if (resolved is null) throw new InvalidDataException($"{path}: kohya name '{m.Groups[2].Value}' matches more than one module path of {component}");
            modulePath = resolved;
            return true;
        }

        string k = PeftAdapterName.Replace(key, ".$1.weight");
        var hit = DottedSuffixes.FirstOrDefault(s => k.EndsWith(s.Suffix, StringComparison.Ordinal));
        if (hit.Suffix is null) return false;
        string raw = k[..^hit.Suffix.Length];
        if (hit.Suffix is ".down.weight" or ".up.weight" && !raw.EndsWith("_lora", StringComparison.Ordinal)) return false;
        part = hit.Part;
        rawModule = raw;

        string rest = raw;
        var candidates = new List<string>();
        foreach (var c in lookup.Keys)
            if (rest.StartsWith(c + ".", StringComparison.Ordinal)) candidates.Add(c);
        if (candidates.Count == 0) candidates.AddRange(lookup.Keys);   // no prefix: old UNet-only files
        foreach (var c in candidates.OrderByDescending(c => c.Length))
        {
            string p = rest.StartsWith(c + ".", StringComparison.Ordinal) ? rest[(c.Length + 1)..] : rest;
            p = OldProcessor.Replace(p, mm => c == AdapterComponents.TextEncoder
                ? "." + (mm.Groups[2].Value == "out" ? "out_proj" : mm.Groups[2].Value + "_proj")
                : "." + (mm.Groups[2].Value == "out" ? "to_out.0" : "to_" + mm.Groups[2].Value));
            if (lookup[c].Paths.Contains(p))
            {
                component = c;
                modulePath = p;
                return true;
            }
        }
        return false;
    }

    /// <summary>The adaptable Linear paths of a component, and kohya's '_'-joined names mapped back to them (null when ambiguous).</summary>
    private sealed class ModuleIndex
    {
        public required HashSet<string> Paths { get; init; }
        public required Dictionary<string, string?> ByKohyaName { get; init; }

        public static ModuleIndex Of(Module root)
        {
            var paths = AdapterInjector.LinearPaths(root).ToHashSet();
            var byName = new Dictionary<string, string?>();
            foreach (var p in paths)
            {
                var n = p.Replace('.', '_');
                byName[n] = byName.ContainsKey(n) ? null : p;
            }
            return new ModuleIndex { Paths = paths, ByKohyaName = byName };
        }
    }
}
