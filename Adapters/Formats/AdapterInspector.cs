using System.Globalization;
using DiffusionPeft.Diffusion.IO;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>One adapted module as a file describes it.</summary>
public sealed record InspectedModule(string Component, string Module, int Rank, double? Alpha, bool Dora);

/// <summary>What an adapter file holds, read without a model: format, method, ranks, targets, parameter count, metadata.</summary>
public sealed record AdapterFileSummary(
    string Path, string Format, string Method, IReadOnlyList<InspectedModule> Modules, long Parameters,
    IReadOnlyDictionary<string, string> Metadata, IReadOnlyList<string> UnrecognisedKeys, DpeftAdapterInfo? Dpeft);

public static class AdapterInspector
{
    private static readonly (string Suffix, string Part)[] Suffixes =
    [
        (".lora_down.weight", "down"), (".lora_up.weight", "up"), (".alpha", "alpha"), (".dora_scale", "dora"),
        (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora.down.weight", "down"), (".lora.up.weight", "up"),
        (".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
        (".lora_magnitude_vector.weight", "dora"), (".lora_magnitude_vector", "dora"),
    ];

    public static AdapterFileSummary Inspect(string path) => InvalidInput.Guard(() => InspectChecked(path));

    private static AdapterFileSummary InspectChecked(string path)
    {
        using var file = SafetensorsFile.Open(path);
        long parameters = file.Entries.Values.Sum(e => e.NumElements);
        if (DpeftAdapterFile.IsDpeftFile(file.Metadata))
        {
            var info = DpeftAdapterFile.ReadInfo(path);
            var modules = info.Targets.Select(t => new InspectedModule(t.Component, t.Path, t.Rank, t.Alpha, info.Options.Method == AdapterMethod.Dora)).ToList();
            return new AdapterFileSummary(path, "dpeft", info.Options.Method.ToString(), modules, parameters, file.Metadata, [], info);
        }

        var groups = new SortedDictionary<string, Dictionary<string, SafetensorsEntry>>(StringComparer.Ordinal);
        var unknown = new List<string>();
        bool kohya = false;
        foreach (var e in file.Entries.Values)
        {
            var hit = Suffixes.FirstOrDefault(s => e.Name.EndsWith(s.Suffix, StringComparison.Ordinal));
            if (hit.Suffix is null) { unknown.Add(e.Name); continue; }
            var module = e.Name[..^hit.Suffix.Length];
            kohya |= module.StartsWith("lora_unet_", StringComparison.Ordinal) || module.StartsWith("lora_te", StringComparison.Ordinal);
            if (!groups.TryGetValue(module, out var g)) groups[module] = g = new();
            g[hit.Part] = e;
        }
        var result = new List<InspectedModule>();
        foreach (var (module, parts) in groups)
        {
            if (!parts.TryGetValue("down", out var down) || !parts.TryGetValue("up", out var up)) { unknown.AddRange(parts.Values.Select(p => p.Name)); continue; }
            if (down.Shape is not [var rank and >= 1 and <= DpeftAdapterFile.MaxRank, _] || up.Shape is not [_, var upRank] || upRank != rank)
                throw new InvalidDataException($"{path}: {module}: down [{string.Join(", ", down.Shape)}] and up [{string.Join(", ", up.Shape)}] are not a rank-r pair of matrices");
            double? alpha = parts.TryGetValue("alpha", out var a) ? LoraImporter.ReadAlpha(path, file, a.Name) : null;
            var (component, name) = Split(module);
            result.Add(new InspectedModule(component, name, (int)rank, alpha, parts.ContainsKey("dora")));
        }
        var method = result.Any(m => m.Dora) ? "DoRA" : "LoRA";
        return new AdapterFileSummary(path, kohya ? "kohya" : "diffusers", method, result, parameters, file.Metadata, unknown.Order(StringComparer.Ordinal).ToList(), null);
    }

    private static (string Component, string Module) Split(string module)
    {
        foreach (var (prefix, component) in new[] { ("lora_unet_", "unet"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"), ("lora_te_", "text_encoder"), ("unet.", "unet"), ("text_encoder.", "text_encoder") })
            if (module.StartsWith(prefix, StringComparison.Ordinal)) return (component, module[prefix.Length..]);
        return ("unet", module);
    }

    /// <summary>A short human-readable description: method, ranks, targets per component and kind, parameters, metadata.</summary>
    public static string Describe(AdapterFileSummary s)
    {
        var inv = CultureInfo.InvariantCulture;
        var lines = new List<string>
        {
            $"file:        {s.Path}",
            $"format:      {s.Format}",
            $"method:      {s.Method}",
            $"rank:        {string.Join(", ", s.Modules.Select(m => m.Rank).Distinct().Order())}",
            $"alpha:       {(s.Modules.All(m => m.Alpha is null) ? "(none stored: loaders use alpha = rank)" : string.Join(", ", s.Modules.Select(m => m.Alpha?.ToString("G6", inv) ?? "rank").Distinct()))}",
            $"modules:     {s.Modules.Count} ({string.Join(", ", s.Modules.GroupBy(m => m.Component).Select(g => $"{g.Key} {g.Count()}"))})",
            $"parameters:  {s.Parameters:N0}",
        };
        if (s.Dpeft is { } d)
        {
            lines.Add($"base model:  {d.BaseModel}");
            if (d.Options.Method == AdapterMethod.SingLora)
                lines.Add($"ramp:        step {d.RampStep} of {d.Options.RampSteps} (u = {SingLoraLinear.RampAt(d.RampStep, d.Options.RampSteps).ToString("G4", inv)})");
        }
        lines.Add("targets by kind:");
        foreach (var g in s.Modules.GroupBy(m => (m.Component, Kind: Kind(m.Module))).OrderBy(g => g.Key.Component).ThenBy(g => g.Key.Kind, StringComparer.Ordinal))
            lines.Add($"  {g.Key.Component,-14} {g.Key.Kind,-22} {g.Count(),4} layers");
        if (s.UnrecognisedKeys.Count > 0)
        {
            lines.Add($"unrecognised keys ({s.UnrecognisedKeys.Count}):");
            lines.AddRange(s.UnrecognisedKeys.Take(20).Select(k => "  " + k));
        }
        if (s.Metadata.Count > 0)
        {
            lines.Add("metadata:");
            foreach (var (k, v) in s.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                lines.Add($"  {k}: {(v.Length > 200 ? v[..200] + "…" : v)}");
        }
        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>attn1.to_q, self_attn.q_proj, ... (kohya names have '_' for '.', so the last two segments are guessed from the end).</summary>
    private static string Kind(string module)
    {
        var dotted = module.Contains('.') ? module : module.Replace("_to_out_0", ".to_out.0").Replace("_to_", ".to_").Replace("_attn", ".attn").Replace("_self_attn_", ".self_attn.").Replace("_mlp_", ".mlp.");
        var parts = dotted.Split('.');
        return parts.Length >= 2 && parts[^1] == "0" && parts.Length >= 3 ? $"{parts[^3]}.{parts[^2]}.0" : parts.Length >= 2 ? $"{parts[^2]}.{parts[^1]}" : dotted;
    }
}
