using System.Globalization;
using System.Text.Json;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>
/// Reads a prompt file: one prompt a line (blank lines and lines starting with '#' skipped), or JSON Lines
/// where each object has "prompt" and may override any generation option for that line:
/// {"prompt": "...", "negative": "...", "n": 4, "seed": 7, "steps": 25, "sampler": "euler_a", "cfg": 6,
///  "width": 512, "height": 768, "clip_skip": 1, "eta": 0, "batch": 2}.
/// Every fault is an <see cref="InvalidDataException"/> naming the file, the line and the key; prompts, images per
/// prompt and images per file are bounded (<see cref="MaxPromptChars"/>, <see cref="MaxImagesPerPrompt"/>,
/// <see cref="MaxImages"/>), so a hostile file cannot make the plan or the tokenizer work in proportion to its claims.
/// </summary>
public static class PromptFile
{
    public const long MaxFileBytes = 16 << 20;
    /// <summary>Far beyond CLIP's 77 tokens (prompts are truncated there anyway).</summary>
    public const int MaxPromptChars = 10_000;
    public const int MaxImagesPerPrompt = 10_000;
    public const int MaxImages = 100_000;

    private static readonly JsonDocumentOptions StrictJson = new() { AllowDuplicateProperties = false };

    public static IReadOnlyList<GenerationOptions> Read(string path, GenerationOptions defaults)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: prompt file not found.", path);
        string[] lines;
        try
        {
            long length = new FileInfo(path).Length;
            if (length > MaxFileBytes) throw new InvalidDataException($"{path}: the prompt file is {length:N0} bytes, more than the {MaxFileBytes:N0} it may have.");
            lines = File.ReadAllLines(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot read the prompt file: {ex.Message}", ex);
        }
        var result = new List<GenerationOptions>();
        long images = 0;
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var where = $"{path}:{i + 1}";
            var options = line.StartsWith('{') ? FromJson(line, defaults, where) : defaults with { Prompt = line };
            try { options.Validate(where); }
            catch (ArgumentException ex) { throw new InvalidDataException(ex.Message, ex); }
            if (options.Prompt.Length > MaxPromptChars || options.NegativePrompt.Length > MaxPromptChars)
                throw new InvalidDataException($"{where}: the prompt or negative prompt is longer than {MaxPromptChars:N0} characters.");
            if (options.Count > MaxImagesPerPrompt)
                throw new InvalidDataException($"{where}: n must be at most {MaxImagesPerPrompt:N0} (got {options.Count}).");
            images += options.Count;
            if (images > MaxImages)
                throw new InvalidDataException($"{where}: the file asks for more than {MaxImages:N0} images in all; split it into several files.");
            result.Add(options);
        }
        if (result.Count == 0) throw new InvalidDataException($"{path}: the prompt file has no prompts.");
        return result;
    }

    private static GenerationOptions FromJson(string line, GenerationOptions d, string where)
    {
        JsonElement o;
        try
        {
            using var doc = JsonDocument.Parse(line, StrictJson);
            o = doc.RootElement.Clone();
        }
        catch (JsonException ex) { throw new InvalidDataException($"{where}: invalid JSON: {ex.Message}"); }
        if (o.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where}: each JSON line must be an object.");
        foreach (var p in o.EnumerateObject())
        {
            try
            {
                d = p.Name switch
                {
                    "prompt" => d with { Prompt = Text(p.Value) },
                    "negative" or "negative_prompt" => d with { NegativePrompt = Text(p.Value) },
                    "n" => d with { Count = p.Value.GetInt32() },
                    "seed" => d with { Seed = p.Value.GetInt64() },
                    "steps" => d with { Steps = p.Value.GetInt32() },
                    "sampler" => d with { Sampler = Text(p.Value) },
                    "cfg" or "guidance_scale" => d with { GuidanceScale = p.Value.GetDouble() },
                    "cfg_rescale" or "guidance_rescale" => d with { GuidanceRescale = p.Value.GetDouble() },
                    "cfg_interval" => d with { GuidanceInterval = GuidanceInterval.Parse(Text(p.Value)) },
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

    /// <summary>A JSON string (JsonElement.GetString returns null for a JSON null instead of failing).</summary>
    private static string Text(JsonElement v) =>
        v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new InvalidDataException($"expected a string, got {v.ValueKind.ToString().ToLowerInvariant()}");

    private static IReadOnlyList<AdapterSpec> ParseAdapters(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => [AdapterSpec.Parse(v.GetString()!)],
        JsonValueKind.Array => v.EnumerateArray().Select(e => AdapterSpec.Parse(Text(e))).ToList(),
        _ => throw new InvalidDataException("expected a string or an array of strings"),
    };
}
