using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>
/// A model's own sampling defaults, from <c>generation_config.json</c> beside its <c>model_index.json</c> (the file name and
/// key transformers uses for a model's generate() defaults; InvokeAI keeps the same per model as "default settings").
/// Stable Diffusion's 7.5 is no law of nature: a model trained otherwise (the toy model) may draw best at another scale.
/// The sampler needs no entry here: it is already the model's, its scheduler/ folder. diffusers ignores the file.
/// </summary>
public sealed record GenerationConfig(double GuidanceScale)
{
    public const string FileName = "generation_config.json";

    /// <summary>The scale used where neither the command nor the model names one: diffusers' default for SD 1.x.</summary>
    public const double StableDiffusionGuidanceScale = 7.5;

    /// <summary>What a guidance scale may be: finite and at least 0.</summary>
    public static bool IsValidScale(double scale) => double.IsFinite(scale) && scale >= 0;

    /// <summary>The folder's config, or null when it has none (or one without guidance_scale); a malformed file throws, naming it and the fault.</summary>
    public static GenerationConfig? Read(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return null;
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})."); }
        if (root is not JsonObject o) throw new InvalidDataException($"{path}: expected a JSON object.");
        // transformers' file may hold other keys only: then the model names no guidance of its own.
        if (o["guidance_scale"] is null) return null;
        if (o["guidance_scale"] is not JsonValue v || !v.TryGetValue<double>(out double scale))
            throw new InvalidDataException($"{path}: \"guidance_scale\" must be a number.");
        if (!IsValidScale(scale))
            throw new InvalidDataException($"{path}: guidance_scale must be a finite number >= 0 (got {scale.ToString(CultureInfo.InvariantCulture)}).");
        return new GenerationConfig(scale);
    }

    /// <summary>Writes the file into <paramref name="folder"/> atomically.</summary>
    public void Write(string folder)
    {
        if (!IsValidScale(GuidanceScale))
            throw new ArgumentOutOfRangeException(nameof(GuidanceScale), GuidanceScale, "a guidance scale must be finite and >= 0");
        var json = new JsonObject { ["guidance_scale"] = GuidanceScale };
        AtomicFile.WriteAllText(Path.Combine(folder, FileName), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
