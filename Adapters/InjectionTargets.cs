using System.Text.RegularExpressions;

namespace DiffusionPeft.Adapters;

/// <summary>Which Linear layers of a module tree get an adapter.</summary>
public sealed record InjectionTargets(IReadOnlyList<TargetPattern> Include, IReadOnlyList<TargetPattern> Exclude, IReadOnlyList<TargetOverride> Overrides)
{
    /// <summary>SD UNet default: to_q, to_k, to_v, to_out.0 of attn1/attn2 in every transformer block.</summary>
    public static InjectionTargets UNetAttention { get; } =
        new([TargetPattern.Regex(@"(^|\.)attn[12]\.(to_q|to_k|to_v|to_out\.0)$")], [], []);

    /// <summary>CLIP text encoder default: self_attn q/k/v/out projections.</summary>
    public static InjectionTargets TextEncoderAttention { get; } =
        new([TargetPattern.Regex(@"(^|\.)self_attn\.(q_proj|k_proj|v_proj|out_proj)$")], [], []);

    public static InjectionTargets Of(params string[] include) => new(include.Select(TargetPattern.Parse).ToList(), [], []);

    public InjectionTargets Excluding(params string[] patterns) => this with { Exclude = Exclude.Concat(patterns.Select(TargetPattern.Parse)).ToList() };

    public InjectionTargets WithOverride(string pattern, int? rank = null, double? alpha = null) =>
        this with { Overrides = Overrides.Append(new TargetOverride(TargetPattern.Parse(pattern), rank, alpha)).ToList() };

    public bool Selects(string path) => Include.Any(p => p.Matches(path)) && !Exclude.Any(p => p.Matches(path));

    public AdapterOptions OptionsFor(string path, AdapterOptions options)
    {
        foreach (var o in Overrides.Where(o => o.Pattern.Matches(path)))
            options = options with { Rank = o.Rank ?? options.Rank, Alpha = o.Alpha ?? options.Alpha };
        return options;
    }
}
