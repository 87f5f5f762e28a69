using System.Globalization;
using System.Text.Json;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>
/// Reads a prompt file: one prompt a line (blank lines and lines starting with '#' skipped), or JSON Lines
/// where each object has "prompt" and may override any generation option for that line:
/// {"prompt": "...", "negative": "...", "n": 4, "seed": 7, "steps": 25, "sampler": "euler_a", "cfg": 6,
///  "width": 512, "height": 768, "clip_skip": 1, "eta": 0, "batch": 2}.
/// </summary>
public static class PromptFile
{
    public static IReadOnlyList<GenerationOptions> Read(string path, GenerationOptions defaults)
    {
        string[] lines;
        try { lines = File.ReadAllLines(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{path}: cannot read the prompt file: {ex.Message}", ex);
        }
        var result = new List<GenerationOptions>();
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var where = $"{path}:{i + 1}";
            var options = line.StartsWith('{') ? FromJson(line, defaults, where) : defaults with { Prompt = line };
            options.Validate(where);
            result.Add(options);
        }
        if (result.Count == 0) throw new InvalidDataException($"{path}: the prompt file has no prompts.");
        return result;
    }

    private static GenerationOptions FromJson(string line, GenerationOptions d, string where)
    {
        JsonElement o;
        try { o = JsonDocument.Parse(line).RootElement.Clone(); }
        catch (JsonException ex) { throw new InvalidDataException($"{where}: invalid JSON: {ex.Message}"); }
        if (o.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where}: each JSON line must be an object.");
        foreach (var p in o.EnumerateObject())
        {
            try
            {
                d = p.Name switch
                {
                    "prompt" => d with { Prompt = p.Value.GetString()! },
                    "negative" or "negative_prompt" => d with { NegativePrompt = p.Value.GetString()! },
                    "n" => d with { Count = p.Value.GetInt32() },
                    "seed" => d with { Seed = p.Value.GetInt64() },
                    "steps" => d with { Steps = p.Value.GetInt32() },
                    "sampler" => d with { Sampler = p.Value.GetString()! },
                    "cfg" or "guidance_scale" => d with { GuidanceScale = p.Value.GetDouble() },
                    "width" => d with { Width = p.Value.GetInt32() },
                    "height" => d with { Height = p.Value.GetInt32() },
                    "clip_skip" => d with { ClipSkip = p.Value.GetInt32() },
                    "eta" => d with { Eta = p.Value.GetDouble() },
                    "batch" => d with { BatchSize = p.Value.GetInt32() },
                    "adapter" or "adapters" => d with { Adapters = ParseAdapters(p.Value) },
                    _ => throw new InvalidDataException($"unknown key '{p.Name}'"),
                };
            }
            catch (Exception ex) when (ex is InvalidOperationException or FormatException or InvalidDataException)
            {
                throw new InvalidDataException($"{where}: key '{p.Name}': {ex.Message}");
            }
        }
        return d;
    }

    private static IReadOnlyList<AdapterSpec> ParseAdapters(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => [AdapterSpec.Parse(v.GetString()!)],
        JsonValueKind.Array => v.EnumerateArray().Select(e => AdapterSpec.Parse(e.GetString()!)).ToList(),
        _ => throw new InvalidDataException("expected a string or an array of strings"),
    };
}
