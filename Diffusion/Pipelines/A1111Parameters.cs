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
        var pairs = Common(o.Steps, samplerName, o.GuidanceScale, seed, o.Width, o.Height, modelName, modelHash);
        if (o.ClipSkip > 0) pairs.Add($"Clip skip: {o.ClipSkip + 1}"); // A1111 counts the last layer as 1
        if (o.GuidanceRescale != 0) pairs.Add($"CFG Rescale phi: {o.GuidanceRescale.ToString(CultureInfo.InvariantCulture)}");   // the CFG-rescale extension's key
        if (!o.GuidanceInterval.IsAlways) pairs.Add($"Guidance interval: {Quote(o.GuidanceInterval.ToString())}");
        if (o.Eta != 0) pairs.Add($"Eta: {o.Eta.ToString(CultureInfo.InvariantCulture)}");
        if (o.Adapters.Count > 0)
            pairs.Add("Lora weights: " + Quote(string.Join(", ", o.Adapters.Select(a => $"{Path.GetFileNameWithoutExtension(a.Path)}: {a.Scale.ToString(CultureInfo.InvariantCulture)}"))));
        return Compose(o.Prompt, o.NegativePrompt, pairs);
    }

    /// <summary>
    /// An image drawn by the pipeline with <paramref name="model"/>'s own scheduler and no negative prompt (DreamBooth's
    /// validation and class images), with <paramref name="extra"/> pairs after the model (a training step, the adapter).
    /// </summary>
    public static string Format(string prompt, int steps, double guidanceScale, long seed, int width, int height,
                                StableDiffusionModel model, params (string Key, string Value)[] extra)
    {
        var pairs = Common(steps, SamplerDisplayName(model.DefaultSamplerKey), guidanceScale, seed, width, height, model.Name, model.ShortHash);
        pairs.AddRange(extra.Select(e => $"{e.Key}: {Quote(e.Value)}"));
        return Compose(prompt, "", pairs);
    }

    private static List<string> Common(int steps, string samplerName, double guidanceScale, long seed, int width, int height, string modelName, string? modelHash)
    {
        var pairs = new List<string>
        {
            $"Steps: {steps}",
            $"Sampler: {samplerName}",
            $"CFG scale: {guidanceScale.ToString(CultureInfo.InvariantCulture)}",
            $"Seed: {seed}",
            $"Size: {width}x{height}",
        };
        if (modelHash is not null) pairs.Add($"Model hash: {modelHash}");
        pairs.Add($"Model: {Quote(modelName)}");
        return pairs;
    }

    private static string Compose(string prompt, string negativePrompt, List<string> pairs)
    {
        var sb = new StringBuilder(prompt);
        if (!string.IsNullOrEmpty(negativePrompt)) sb.Append("\nNegative prompt: ").Append(negativePrompt);
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
