using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Diffusion.Schedulers;

public enum BetaSchedule { Linear, ScaledLinear, SquaredCosCapV2 }

public enum PredictionType { Epsilon, VPrediction, Sample }

/// <summary>How inference timesteps are spread over the training range (Table 2 of arXiv:2305.08891).</summary>
public enum TimestepSpacing { Leading, Linspace, Trailing }

/// <summary>
/// The keys of a diffusers <c>scheduler_config.json</c> that our schedulers use. Values absent from the file
/// keep diffusers' constructor defaults; where those differ between classes (timestep_spacing, set_alpha_to_one,
/// clip_sample) the value stays null and each scheduler applies its own default, as diffusers 0.25.0 does.
/// </summary>
public sealed record SchedulerConfig
{
    /// <summary>Where the config came from (a file path); every error about it names this.</summary>
    public string Source { get; init; } = "<default scheduler config>";
    public string? ClassName { get; init; }
    public int NumTrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.0001;
    public double BetaEnd { get; init; } = 0.02;
    public BetaSchedule BetaSchedule { get; init; } = BetaSchedule.Linear;
    public IReadOnlyList<double>? TrainedBetas { get; init; }
    public int StepsOffset { get; init; }
    public bool? SetAlphaToOne { get; init; }
    public bool? ClipSample { get; init; }
    public double ClipSampleRange { get; init; } = 1.0;
    public PredictionType PredictionType { get; init; } = PredictionType.Epsilon;
    public TimestepSpacing? TimestepSpacing { get; init; }
    /// <summary>DDPM: fixed_small (default) or fixed_large; DPMSolver: null.</summary>
    public string? VarianceType { get; init; }
    public bool SkipPrkSteps { get; init; } = true;
    public bool UseKarrasSigmas { get; init; }
    public string InterpolationType { get; init; } = "linear";
    public double? SigmaMin { get; init; }
    public double? SigmaMax { get; init; }
    public string AlgorithmType { get; init; } = "dpmsolver++";
    public string SolverType { get; init; } = "midpoint";
    public int SolverOrder { get; init; } = 2;
    public bool LowerOrderFinal { get; init; } = true;
    public bool EulerAtFinal { get; init; }
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;
    // Features of diffusers 0.25.0 that are not ported; a config that enables them is rejected.
    public bool Thresholding { get; init; }
    public bool RescaleBetasZeroSnr { get; init; }
    public bool UseLuLambdas { get; init; }
    public string TimestepType { get; init; } = "discrete";

    public static SchedulerConfig Load(string path) => FromJson(ConfigJson.Load(path));

    public static SchedulerConfig FromJson(ConfigJson json)
    {
        string src = json.Source;
        try
        {
            var c = new SchedulerConfig
            {
                Source = src,
                ClassName = ReadString(json, "_class_name", null),
                NumTrainTimesteps = json.Int("num_train_timesteps", 1000),
                BetaStart = json.Double("beta_start", 0.0001),
                BetaEnd = json.Double("beta_end", 0.02),
                BetaSchedule = ParseBetaSchedule(ReadString(json, "beta_schedule", "linear")!, src),
                TrainedBetas = json.Has("trained_betas") ? ReadDoubles(json, "trained_betas") : null,
                StepsOffset = json.Int("steps_offset", 0),
                SetAlphaToOne = json.Has("set_alpha_to_one") ? ReadBool(json, "set_alpha_to_one", false) : null,
                ClipSample = json.Has("clip_sample") ? ReadBool(json, "clip_sample", false) : null,
                ClipSampleRange = json.Double("clip_sample_range", 1.0),
                PredictionType = ParsePredictionType(ReadString(json, "prediction_type", "epsilon")!, src),
                TimestepSpacing = json.Has("timestep_spacing") ? ParseSpacing(ReadString(json, "timestep_spacing", "")!, src) : null,
                VarianceType = ReadString(json, "variance_type", null),
                SkipPrkSteps = ReadBool(json, "skip_prk_steps", false),
                UseKarrasSigmas = ReadBool(json, "use_karras_sigmas", false),
                InterpolationType = ReadString(json, "interpolation_type", "linear")!,
                SigmaMin = json.Has("sigma_min") ? json.Double("sigma_min") : null,
                SigmaMax = json.Has("sigma_max") ? json.Double("sigma_max") : null,
                AlgorithmType = ReadString(json, "algorithm_type", "dpmsolver++")!,
                SolverType = ReadString(json, "solver_type", "midpoint")!,
                SolverOrder = json.Int("solver_order", 2),
                LowerOrderFinal = ReadBool(json, "lower_order_final", true),
                EulerAtFinal = ReadBool(json, "euler_at_final", false),
                LambdaMinClipped = json.Double("lambda_min_clipped", double.NegativeInfinity),
                Thresholding = ReadBool(json, "thresholding", false),
                RescaleBetasZeroSnr = ReadBool(json, "rescale_betas_zero_snr", false),
                UseLuLambdas = ReadBool(json, "use_lu_lambdas", false),
                TimestepType = ReadString(json, "timestep_type", "discrete")!,
            };
            c.Validate();
            return c;
        }
        catch (InvalidOperationException ex) // JsonNode.GetValue<T> on a value of the wrong kind
        {
            throw new InvalidDataException($"{src}: malformed scheduler config: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// A scheduler_config.json for this config: the keys <see cref="FromJson"/> reads (unset class-dependent ones left
    /// out, so each class applies its default again). -Infinity is written as Python's json module does.
    /// </summary>
    public string ToJsonText()
    {
        var o = new JsonObject
        {
            ["_class_name"] = ClassName,
            ["_diffusers_version"] = "0.25.0",
            ["num_train_timesteps"] = NumTrainTimesteps,
            ["beta_start"] = BetaStart,
            ["beta_end"] = BetaEnd,
            ["beta_schedule"] = BetaSchedule switch { BetaSchedule.ScaledLinear => "scaled_linear", BetaSchedule.SquaredCosCapV2 => "squaredcos_cap_v2", _ => "linear" },
            ["trained_betas"] = TrainedBetas is null ? null : ConfigJson.Array(TrainedBetas),
            ["steps_offset"] = StepsOffset,
            ["clip_sample_range"] = ClipSampleRange,
            ["prediction_type"] = PredictionType switch { PredictionType.VPrediction => "v_prediction", PredictionType.Sample => "sample", _ => "epsilon" },
            ["skip_prk_steps"] = SkipPrkSteps,
            ["use_karras_sigmas"] = UseKarrasSigmas,
            ["interpolation_type"] = InterpolationType,
            ["algorithm_type"] = AlgorithmType,
            ["solver_type"] = SolverType,
            ["solver_order"] = SolverOrder,
            ["lower_order_final"] = LowerOrderFinal,
            ["euler_at_final"] = EulerAtFinal,
        };
        if (SetAlphaToOne is { } a) o["set_alpha_to_one"] = a;
        if (ClipSample is { } c) o["clip_sample"] = c;
        if (TimestepSpacing is { } t) o["timestep_spacing"] = t.ToString().ToLowerInvariant();
        if (VarianceType is { } v) o["variance_type"] = v;
        if (SigmaMin is { } min) o["sigma_min"] = min;
        if (SigmaMax is { } max) o["sigma_max"] = max;
        if (double.IsFinite(LambdaMinClipped)) o["lambda_min_clipped"] = LambdaMinClipped;
        var text = o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
        return double.IsNegativeInfinity(LambdaMinClipped) ? text[..text.LastIndexOf('}')].TrimEnd() + ",\n  \"lambda_min_clipped\": -Infinity\n}" : text;
    }

    /// <summary>Checks the values every scheduler relies on; the message names <see cref="Source"/> and the key.</summary>
    public void Validate()
    {
        if (NumTrainTimesteps < 2 || NumTrainTimesteps > MaxTrainTimesteps)
            throw Fault($"num_train_timesteps must be in 2..{MaxTrainTimesteps} (got {NumTrainTimesteps})");
        if (TrainedBetas is null && !(BetaStart > 0 && BetaEnd >= BetaStart && BetaEnd < 1))
            throw Fault($"beta_start {BetaStart} / beta_end {BetaEnd} must satisfy 0 < beta_start <= beta_end < 1");
        if (TrainedBetas is not null)
        {
            if (TrainedBetas.Count != NumTrainTimesteps)
                throw Fault($"trained_betas has {TrainedBetas.Count} entries but num_train_timesteps is {NumTrainTimesteps}");
            if (TrainedBetas.Any(b => !(b > 0 && b < 1))) throw Fault("trained_betas must all lie in (0, 1)");
        }
        if (StepsOffset < 0 || StepsOffset >= NumTrainTimesteps) throw Fault($"steps_offset {StepsOffset} is out of range");
        if (SolverOrder is < 1 or > 3) throw Fault($"solver_order must be in 1..3 (got {SolverOrder})");
        if (!(double.IsFinite(ClipSampleRange) && ClipSampleRange > 0)) throw Fault($"clip_sample_range must be finite and > 0 (got {ClipSampleRange})");
        if (SigmaMin is { } lo && !(double.IsFinite(lo) && lo > 0)) throw Fault($"sigma_min must be finite and > 0 (got {lo})");
        if (SigmaMax is { } hi && !(double.IsFinite(hi) && hi > (SigmaMin ?? 0))) throw Fault($"sigma_max must be finite and above sigma_min (got {hi})");
        if (double.IsNaN(LambdaMinClipped)) throw Fault("lambda_min_clipped must be a number, not NaN");
    }

    /// <summary>Real schedules have 1000 steps; the bound keeps a hostile config from sizing arrays in the gigabytes.</summary>
    public const int MaxTrainTimesteps = 100_000;

    internal InvalidDataException Fault(string what) => new($"{Source}: {what}.");
    internal InvalidDataException Unsupported(string scheduler, string what) => new($"{Source}: {scheduler} does not support {what}.");

    public static BetaSchedule ParseBetaSchedule(string s, string source) => s switch
    {
        "linear" => BetaSchedule.Linear,
        "scaled_linear" => BetaSchedule.ScaledLinear,
        "squaredcos_cap_v2" => BetaSchedule.SquaredCosCapV2,
        _ => throw new InvalidDataException($"{source}: beta_schedule '{s}' is not supported (valid: linear, scaled_linear, squaredcos_cap_v2)."),
    };

    public static PredictionType ParsePredictionType(string s, string source) => s switch
    {
        "epsilon" => PredictionType.Epsilon,
        "v_prediction" => PredictionType.VPrediction,
        "sample" => PredictionType.Sample,
        _ => throw new InvalidDataException($"{source}: prediction_type '{s}' is not supported (valid: epsilon, v_prediction, sample)."),
    };

    public static TimestepSpacing ParseSpacing(string s, string source) => s switch
    {
        "leading" => Schedulers.TimestepSpacing.Leading,
        "linspace" => Schedulers.TimestepSpacing.Linspace,
        "trailing" => Schedulers.TimestepSpacing.Trailing,
        _ => throw new InvalidDataException($"{source}: timestep_spacing '{s}' is not supported (valid: leading, linspace, trailing)."),
    };

    private static bool ReadBool(ConfigJson json, string key, bool fallback) =>
        !json.Has(key) ? fallback
        : json.Get(key) is JsonValue v && v.TryGetValue<bool>(out var b) ? b
        : throw new InvalidDataException($"{json.Source}: config key '{key}' should be true or false.");

    private static string? ReadString(ConfigJson json, string key, string? fallback) =>
        !json.Has(key) ? fallback
        : json.Get(key) is JsonValue v && v.TryGetValue<string>(out var s) ? s
        : throw new InvalidDataException($"{json.Source}: config key '{key}' should be a string.");

    private static double[] ReadDoubles(ConfigJson json, string key)
    {
        if (json.Get(key) is not JsonArray a) throw new InvalidDataException($"{json.Source}: config key '{key}' should be an array of numbers.");
        return a.Select(n => n is JsonValue v && v.TryGetValue<double>(out var d) ? d
            : throw new InvalidDataException($"{json.Source}: config key '{key}' should be an array of numbers.")).ToArray();
    }
}
