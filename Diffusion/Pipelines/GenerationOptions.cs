using DiffusionPeft.Diffusion.Schedulers;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>An adapter to apply while generating: a file and its strength (`FILE[:scale]` on the command line).</summary>
public sealed record AdapterSpec(string Path, double Scale = 1.0)
{
    public static AdapterSpec Parse(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon > 0 && double.TryParse(text[(colon + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double s))
            return new AdapterSpec(text[..colon], s);
        return new AdapterSpec(text);
    }

    public override string ToString() => Scale == 1.0 ? Path : $"{Path}:{Scale.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
}

/// <summary>Everything that decides one prompt's images. Prompt files may override any of these per line.</summary>
public sealed record GenerationOptions
{
    public string Prompt { get; init; } = "";
    public string NegativePrompt { get; init; } = "";
    /// <summary>Images for this prompt.</summary>
    public int Count { get; init; } = 1;
    /// <summary>Image k is drawn from seed + k, so it can be reproduced alone.</summary>
    public long Seed { get; init; }
    public int Steps { get; init; } = 30;
    /// <summary>A sampler name (`ddim`, `pndm`, `euler_a`, `dpm++2m_karras`, ...) or `default` for the model's own scheduler config.</summary>
    public string Sampler { get; init; } = "default";
    public double GuidanceScale { get; init; } = 7.5;
    /// <summary>diffusers' guidance_rescale φ in [0, 1]; 0 is plain guidance.</summary>
    public double GuidanceRescale { get; init; }
    /// <summary>The timesteps guidance is applied at; the conditional prediction alone elsewhere.</summary>
    public GuidanceInterval GuidanceInterval { get; init; } = GuidanceInterval.Always;
    public int Width { get; init; } = 512;
    public int Height { get; init; } = 512;
    /// <summary>0: last layer; k: the k-th layer from the end with the final layer norm (diffusers' clip_skip).</summary>
    public int ClipSkip { get; init; }
    public double Eta { get; init; }
    public int BatchSize { get; init; } = 1;
    public IReadOnlyList<AdapterSpec> Adapters { get; init; } = [];

    /// <summary>Checks ranges and sizes; the message names the offending option and where it came from.</summary>
    public void Validate(string where)
    {
        string? fault =
            string.IsNullOrWhiteSpace(Prompt) ? "the prompt is empty" :
            Count < 1 ? $"n must be at least 1 (got {Count})" :
            Steps < 1 || Steps > 1000 ? $"steps must be in 1..1000 (got {Steps})" :
            Width < 8 || Height < 8 || Width % 8 != 0 || Height % 8 != 0 ? $"width and height must be positive multiples of 8 (got {Width}x{Height})" :
            Width > 4096 || Height > 4096 ? $"width and height must be at most 4096 (got {Width}x{Height})" :
            BatchSize < 1 ? $"batch must be at least 1 (got {BatchSize})" :
            ClipSkip < 0 ? $"clip-skip must be >= 0 (got {ClipSkip})" :
            !GenerationConfig.IsValidScale(GuidanceScale) ? $"cfg must be a finite number >= 0 (got {GuidanceScale})" :
            !(Eta >= 0 && Eta <= 1) ? $"eta must be in [0, 1] (got {Eta})" :
            !SchedulerFactory.IsKnown(Sampler) ? $"unknown sampler '{Sampler}' (valid: default, {string.Join(", ", SchedulerFactory.Names)}, or a diffusers class name)" :
            !(GuidanceRescale >= 0 && GuidanceRescale <= 1) ? $"cfg-rescale must be in [0, 1] (got {GuidanceRescale})" :
            Adapters.FirstOrDefault(a => string.IsNullOrWhiteSpace(a.Path) || !double.IsFinite(a.Scale)) is { } bad ? $"adapter '{bad}' needs a file and a finite scale" :
            null;
        if (fault is not null) throw new ArgumentException($"{where}: {fault}.");
    }
}
