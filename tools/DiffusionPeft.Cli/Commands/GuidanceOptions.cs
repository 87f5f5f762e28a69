using System.CommandLine;
using DiffusionPeft.Diffusion.Pipelines;

namespace DiffusionPeft.Cli.Commands;

/// <summary>The classifier-free guidance options shared by generate and toy-model evaluate: --cfg, --cfg-rescale, --cfg-interval.</summary>
public sealed class GuidanceOptions
{
    public required Option<double?> Scale { get; init; }
    public required Option<double> Rescale { get; init; }
    public required Option<string?> Interval { get; init; }

    public static GuidanceOptions Create() => new()
    {
        Scale = new Option<double?>("--cfg")
        {
            Description = "Classifier-free guidance scale (default: the model's own, its generation_config.json's guidance_scale; 7.5 for a model without one).",
        },
        Rescale = new Option<double>("--cfg-rescale")
        {
            Description = "diffusers' guidance_rescale φ in [0, 1]: pulls the guided prediction's spread back toward the conditional one's (0.7 in Lin et al. 2024). 0: off.",
            DefaultValueFactory = _ => 0.0,
        },
        Interval = new Option<string?>("--cfg-interval")
        {
            Description = "LO,HI: guide only at timesteps LO..HI of 0..999 (Kynkäänniemi et al. 2024); the conditional prediction alone elsewhere. Default: every step.",
        },
    };

    public void AddTo(Command c)
    {
        c.Options.Add(Scale);
        c.Options.Add(Rescale);
        c.Options.Add(Interval);
    }

    /// <summary>The scale given, or null: the model's default (<see cref="StableDiffusionModel.DefaultGuidanceScale"/>), known once it is loaded.</summary>
    public double? ScaleOf(ParseResult r) => r.GetValue(Scale);

    public double RescaleOf(ParseResult r) => r.GetValue(Rescale);

    /// <summary>The interval given, or <see cref="GuidanceInterval.Always"/>; a malformed one throws a message naming it.</summary>
    public GuidanceInterval IntervalOf(ParseResult r) => r.GetValue(Interval) is { } text ? GuidanceInterval.Parse(text) : GuidanceInterval.Always;
}
