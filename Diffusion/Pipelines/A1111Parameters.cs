using System.Globalization;
using System.Text;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>
/// The `parameters` PNG text chunk as AUTOMATIC1111's web UI writes it, which existing tools parse:
/// the prompt, an optional "Negative prompt:" line, then comma-separated "Key: value" pairs.
/// </summary>
public static class A1111Parameters
{
    public static string Format(GenerationOptions o, long seed, string modelName, string? modelHash, string samplerName)
    {
        var sb = new StringBuilder(o.Prompt);
        if (!string.IsNullOrEmpty(o.NegativePrompt)) sb.Append("\nNegative prompt: ").Append(o.NegativePrompt);
        var pairs = new List<string>
        {
            $"Steps: {o.Steps}",
            $"Sampler: {samplerName}",
            $"CFG scale: {o.GuidanceScale.ToString(CultureInfo.InvariantCulture)}",
            $"Seed: {seed}",
            $"Size: {o.Width}x{o.Height}",
        };
        if (modelHash is not null) pairs.Add($"Model hash: {modelHash}");
        pairs.Add($"Model: {Quote(modelName)}");
        if (o.ClipSkip > 0) pairs.Add($"Clip skip: {o.ClipSkip + 1}"); // A1111 counts the last layer as 1
        if (o.GuidanceRescale != 0) pairs.Add($"CFG Rescale phi: {o.GuidanceRescale.ToString(CultureInfo.InvariantCulture)}");   // the CFG-rescale extension's key
        if (!o.GuidanceInterval.IsAlways) pairs.Add($"Guidance interval: {Quote(o.GuidanceInterval.ToString())}");
        if (o.Eta != 0) pairs.Add($"Eta: {o.Eta.ToString(CultureInfo.InvariantCulture)}");
        if (o.Adapters.Count > 0)
            pairs.Add("Lora weights: " + Quote(string.Join(", ", o.Adapters.Select(a => $"{Path.GetFileNameWithoutExtension(a.Path)}: {a.Scale.ToString(CultureInfo.InvariantCulture)}"))));
        pairs.Add("Version: dpeft");
        sb.Append('\n').Append(string.Join(", ", pairs));
        return sb.ToString();
    }

    /// <summary>A1111's display names for our sampler keys.</summary>
    public static string SamplerDisplayName(string key) => key switch
    {
        "ddim" => "DDIM",
        "pndm" => "PLMS",
        "lms" => "LMS",
        "euler" => "Euler",
        "euler_a" => "Euler a",
        "dpm++2m" => "DPM++ 2M",
        "dpm++2m_karras" => "DPM++ 2M Karras",
        "ddpm" => "DDPM",
        _ => key,
    };

    private static string Quote(string v) => v.Contains(',') || v.Contains(':') || v.Contains('"') ? "\"" + v.Replace("\"", "\\\"") + "\"" : v;
}
