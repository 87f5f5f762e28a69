using System.Globalization;
using System.Reflection;
using System.Runtime.Serialization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using DiffusionPeft.Adapters;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace DiffusionPeft.DreamBooth.Config;

/// <summary>A bad configuration value or key; the message names its source (file or command line) and the option.</summary>
public sealed class TrainConfigException(string message) : ArgumentException(message);

/// <summary>One option of <see cref="TrainConfig"/>: key, help and the property behind it.</summary>
public sealed record TrainOption(string Key, string Help, bool ResumeNeutral, PropertyInfo Property)
{
    public Type ValueType => Property.PropertyType;
    public bool IsList => ValueType.IsGenericType && ValueType.GetGenericTypeDefinition() == typeof(EquatableList<>);
    public bool IsFlag => ValueType == typeof(bool);
}

/// <summary>
/// YAML reading/writing of <see cref="TrainConfig"/> and command-line overrides. The YAML keys are the
/// command-line flags without their dashes, so <c>dpeft train --config run.yaml --steps 800</c> reads the
/// file and then applies the flag. Unknown keys and bad values are errors naming the file, line and key.
/// </summary>
public static class TrainConfigYaml
{
    public const string ResolvedFileName = "config.yaml";

    public static readonly IReadOnlyList<TrainOption> Options = typeof(TrainConfig).GetProperties()
        .Select(p => (p, a: p.GetCustomAttribute<ConfigKeyAttribute>()))
        .Where(x => x.a is not null)
        .Select(x => new TrainOption(x.a!.Key, x.a.Help, x.a.ResumeNeutral, x.p))
        .ToArray();

    private static readonly Dictionary<string, TrainOption> ByKey = Options.ToDictionary(o => o.Key, StringComparer.Ordinal);

    public static TrainOption? Find(string key) => ByKey.GetValueOrDefault(NormalizeKey(key));

    /// <summary>The config file (if any) overridden by command-line values, validated; keys neither gives come from <paramref name="defaults"/>.</summary>
    public static TrainConfig Resolve(string? configPath, IEnumerable<KeyValuePair<string, string>>? overrides = null, TrainConfig? defaults = null)
    {
        var config = configPath is null ? defaults ?? new TrainConfig() : Load(configPath, validate: false, defaults);
        if (overrides is not null) config = ApplyOverrides(config, overrides);
        Validate(config, configPath is null ? null : overrides is null ? configPath : $"{configPath} with the command-line values");
        return config;
    }

    /// <summary>A training config is a few kilobytes; the bound keeps a hostile file from sizing what parsing allocates.</summary>
    public const long MaxFileBytes = 1 << 20;

    /// <summary>
    /// Deepest nesting of mappings and sequences accepted (a config needs 2). YamlDotNet's document loader recurses once
    /// per level, so a deeply nested file would overflow the stack and end the process: the depth is checked first
    /// with its event parser, which does not recurse.
    /// </summary>
    public const int MaxDepth = 16;

    public static TrainConfig Load(string path, bool validate = true, TrainConfig? defaults = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config file '{path}' does not exist", path);
        string text;
        try
        {
            long length = new FileInfo(path).Length;
            if (length > MaxFileBytes) throw new TrainConfigException($"{path}: the config file is {length:N0} bytes, more than the {MaxFileBytes:N0} a training config may have");
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new TrainConfigException($"{path}: cannot read the config file: {ex.Message}");
        }
        var config = Parse(text, path, defaults ?? new TrainConfig());
        if (validate) Validate(config, path);
        return config;
    }

    /// <summary>Applies the keys of a YAML mapping onto <paramref name="baseConfig"/>.</summary>
    public static TrainConfig Parse(string yaml, string source, TrainConfig baseConfig)
    {
        if (yaml.Length > MaxFileBytes) throw new TrainConfigException($"{source}: the config is {yaml.Length:N0} characters, more than the {MaxFileBytes:N0} a training config may have");
        CheckStructure(yaml, source);
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlException ex) { throw new TrainConfigException($"{source}: invalid YAML at line {ex.Start.Line}, column {ex.Start.Column}: {ex.Message}"); }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException or OverflowException)
        {
            throw new TrainConfigException($"{source}: invalid YAML: {ex.Message}");
        }
        if (stream.Documents.Count == 0) return baseConfig;
        if (stream.Documents.Count > 1) throw new TrainConfigException($"{source}: expected one YAML document, found {stream.Documents.Count}");
        var root = stream.Documents[0].RootNode;
        if (root is YamlScalarNode { Value: null or "" or "~" or "null" }) return baseConfig;
        if (root is not YamlMappingNode map) throw new TrainConfigException($"{source}: expected a mapping of option: value at the top level");

        var config = baseConfig with { };
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in map.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? "";
            var where = $"{source}, line {keyNode.Start.Line}";
            if (NormalizeKey(key) == LegacyMixedPrecisionKey)
            {
                config = ApplyLegacyMixedPrecision(config, (valueNode as YamlScalarNode)?.Value, where);
                continue;
            }
            var option = Find(key) ?? throw new TrainConfigException($"{where}: unknown key '{key}'{Suggest(key)}");
            if (!seen.Add(option.Key)) throw new TrainConfigException($"{where}: key '{key}' appears twice");
            object? value = valueNode switch
            {
                YamlSequenceNode seq when option.IsList => ConvertList(option, seq.Children.Select(n => ScalarText(n, where, key)), where),
                YamlSequenceNode => throw new TrainConfigException($"{where}: '{key}' takes one value, not a list"),
                YamlScalarNode s => option.IsList
                    ? (IsNull(s) ? ConvertList(option, [], where) : ConvertList(option, [s.Value!], where))
                    : ConvertScalar(option, IsNull(s) ? null : s.Value, where),
                _ => throw new TrainConfigException($"{where}: '{key}' must be a value, not a mapping"),
            };
            option.Property.SetValue(config, value);
        }
        return config;
    }

    /// <summary>
    /// Walks the YAML events once, without building nodes: nesting deeper than <see cref="MaxDepth"/> and aliases (which
    /// a config never needs, and which could make the loaded graph cyclic or exponentially large) are refused.
    /// </summary>
    private static void CheckStructure(string yaml, string source)
    {
        var parser = new Parser(new StringReader(yaml));
        int depth = 0;
        try
        {
            while (parser.MoveNext())
            {
                switch (parser.Current)
                {
                    case AnchorAlias alias:
                        throw new TrainConfigException($"{source}, line {alias.Start.Line}: YAML aliases (*{alias.Value}) are not supported in a training config");
                    case MappingStart or SequenceStart when ++depth > MaxDepth:
                        throw new TrainConfigException($"{source}, line {parser.Current.Start.Line}: nested more than {MaxDepth} levels deep (a training config is a mapping of option: value)");
                    case MappingEnd or SequenceEnd:
                        depth--;
                        break;
                }
            }
        }
        catch (YamlException ex) { throw new TrainConfigException($"{source}: invalid YAML at line {ex.Start.Line}, column {ex.Start.Column}: {ex.Message}"); }
        catch (Exception ex) when (ex is InvalidOperationException or (ArgumentException and not TrainConfigException) or FormatException or OverflowException)
        {
            // YamlDotNet's scanner fails this way on some malformed input instead of raising a YamlException.
            throw new TrainConfigException($"{source}: invalid YAML near line {parser.Current?.Start.Line}: {ex.Message}");
        }
    }

    /// <summary>
    /// Command-line values (key with or without leading dashes → text). Repeated keys of list options
    /// accumulate and replace the file's list; for other options the last value wins. A flag given with an
    /// empty value means true.
    /// </summary>
    public static TrainConfig ApplyOverrides(TrainConfig config, IEnumerable<KeyValuePair<string, string>> overrides, string source = "command line")
    {
        var result = config with { };
        var lists = new Dictionary<TrainOption, List<string>>();
        foreach (var (rawKey, text) in overrides)
        {
            if (NormalizeKey(rawKey) == LegacyMixedPrecisionKey)
            {
                result = ApplyLegacyMixedPrecision(result, text, $"{source}, --{LegacyMixedPrecisionKey}");
                continue;
            }
            var option = Find(rawKey) ?? throw new TrainConfigException($"{source}: unknown option --{NormalizeKey(rawKey)}{Suggest(rawKey)}");
            var where = $"{source}, --{option.Key}";
            if (option.IsList) { (lists.TryGetValue(option, out var l) ? l : lists[option] = []).Add(text); continue; }
            var value = option.IsFlag && text == "" ? true : ConvertScalar(option, text, where);
            option.Property.SetValue(result, value);
        }
        foreach (var (option, values) in lists)
            option.Property.SetValue(result, ConvertList(option, values, $"{source}, --{option.Key}"));
        return result;
    }

    public static string Serialize(TrainConfig config)
    {
        var map = new YamlMappingNode();
        foreach (var o in Options)
        {
            var value = o.Property.GetValue(config);
            YamlNode node = value switch
            {
                null => new YamlScalarNode("null") { Style = ScalarStyle.Plain },
                EquatableList<string> l => Sequence(l.Select(Quoted)),
                EquatableList<long> l => Sequence(l.Select(x => Plain(x.ToString(CultureInfo.InvariantCulture)))),
                string s => Quoted(s),
                _ => Plain(FormatScalar(value)),
            };
            map.Add(new YamlScalarNode(o.Key), node);
        }
        var sb = new StringBuilder();
        sb.AppendLine("# DiffusionPeft DreamBooth run configuration (dpeft train --config FILE; command-line flags override it)");
        using (var w = new StringWriter(sb)) new YamlStream(new YamlDocument(map)).Save(w, assignAnchors: false);
        var text = sb.ToString();
        // YamlDotNet ends a document with "...": not needed for a single document.
        return text.EndsWith("...\n") ? text[..^4] : text.EndsWith("...\r\n") ? text[..^5] : text;
    }

    /// <summary>The resolved config as a JSON object keyed like config.yaml.</summary>
    public static string ToJson(TrainConfig config)
    {
        var json = new JsonObject();
        foreach (var o in Options)
            json[o.Key] = o.Property.GetValue(config) switch
            {
                null => null,
                EquatableList<string> l => new JsonArray(l.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
                EquatableList<long> l => new JsonArray(l.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
                Enum e => EnumName(e),
                bool b => b,
                int i => i,
                long l => l,
                double d => d,
                var v => Convert.ToString(v, CultureInfo.InvariantCulture),
            };
        return json.ToJsonString();
    }

    public static void Save(TrainConfig config, string path) => AtomicFile.WriteAllText(path, Serialize(config));

    /// <summary>SHA-256 over the options that determine the training trajectory (resume-neutral ones excluded).</summary>
    public static string TrainingHash(TrainConfig config)
    {
        var normalized = config with { };
        var defaults = new TrainConfig();
        foreach (var o in Options.Where(o => o.ResumeNeutral || !Applies(o.Key, config))) o.Property.SetValue(normalized, o.Property.GetValue(defaults));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Serialize(normalized))));
    }

    /// <summary>Keys whose values differ between two configs, ignoring resume-neutral options and options neither run uses.</summary>
    public static IReadOnlyList<string> TrainingDifferences(TrainConfig a, TrainConfig b) =>
        Options.Where(o => !o.ResumeNeutral && (Applies(o.Key, a) || Applies(o.Key, b)) && !Equals(o.Property.GetValue(a), o.Property.GetValue(b)))
            .Select(o => o.Key).ToArray();

    private static readonly HashSet<string> AdapterKeys = ["method", "rank", "alpha"];

    /// <summary>
    /// Whether an option can change this run: another method's settings (SingLoRA's ramp and init, SDS-LoRA's basis, LoRA+'s
    /// ratio) and, in full fine-tuning, the adapter's, do not. Runs differing only there train the same, so a default that
    /// changes in a new version does not stop an old run from resuming.
    /// </summary>
    public static bool Applies(string key, TrainConfig c) => key switch
    {
        "singlora-ramp-steps" or "singlora-init-scale" => c.Mode == TrainingMode.Adapter && c.Method == AdapterMethod.SingLora,
        "sds-basis" => c.Mode == TrainingMode.Adapter && c.Method == AdapterMethod.SdsLora,
        "loraplus-ratio" => c.Mode == TrainingMode.Adapter && c.Method == AdapterMethod.LoraPlus,
        "unmasked-weight" => c.MaskedLoss,
        "whiten-conditioning" => c.Mode == TrainingMode.Full,
        "whiten-strength" => c.Mode == TrainingMode.Full && c.WhitenConditioning,
        _ when AdapterKeys.Contains(key) => c.Mode == TrainingMode.Adapter,
        _ => true,
    };

    public static void Validate(TrainConfig c, string? source = null)
    {
        var errors = new List<string>();
        void Check(bool ok, string key, string fault) { if (!ok) errors.Add($"--{key}: {fault}"); }
        void CheckParse(Action parse, string key)
        {
            try { parse(); }
            catch (ArgumentException e) { errors.Add(e.Message); }   // TorchOptions' messages start with --key
        }

        foreach (var (key, value) in new[] { ("model", c.Model), ("images", c.Images), ("out", c.Out) })
            Check(!string.IsNullOrWhiteSpace(value), key, "required (set it in the config file or on the command line)");
        // Full fine-tuning on a captioned folder (NAME.txt beside each image) needs no instance prompt; the scan checks every image has one.
        Check(c.Mode == TrainingMode.Full || !string.IsNullOrWhiteSpace(c.Prompt), "prompt", "required (set it in the config file or on the command line)");
        Check(c.CaptionDropout is >= 0 and < 1, "caption-dropout", $"must be in [0, 1), got {Fmt(c.CaptionDropout)}");
        Check(c.Mode != TrainingMode.Full || c.DType.Trim().ToLowerInvariant() is "fp32" or "float32" or "float" or "bf16" or "bfloat16" or TorchOptions.AutoDType, "dtype",
            "full fine-tuning trains fp32 weights: use --dtype fp32, or bf16 for bf16 compute on fp32 master weights (fp16 would need loss scaling; --save-dtype bf16 writes small files)");
        Check(c.Rank >= 1, "rank", $"must be >= 1, got {c.Rank}");
        Check(c.Alpha is null || (c.Alpha > 0 && double.IsFinite(c.Alpha.Value)), "alpha", $"must be > 0, got {c.Alpha}");
        Check(c.Steps >= 1, "steps", $"must be >= 1, got {c.Steps}");
        Check(c.Lr > 0 && double.IsFinite(c.Lr), "lr", $"must be > 0, got {Fmt(c.Lr)}");
        Check(c.TextEncoderLr is null || (c.TextEncoderLr > 0 && double.IsFinite(c.TextEncoderLr.Value)), "text-encoder-lr", $"must be > 0, got {c.TextEncoderLr}");
        Check(c.Batch >= 1, "batch", $"must be >= 1, got {c.Batch}");
        Check(c.GradAccumulation >= 1, "grad-accumulation", $"must be >= 1, got {c.GradAccumulation}");
        Check(c.Resolution >= 64 && c.Resolution % 8 == 0, "resolution", $"must be a multiple of 8 and >= 64, got {c.Resolution}");
        Check(!c.Buckets || c.Resolution % 64 == 0, "resolution", $"with --buckets it must be a multiple of 64, got {c.Resolution}");
        Check(c.CheckpointEvery >= 0, "checkpoint-every", $"must be >= 0, got {c.CheckpointEvery}");
        Check(c.Keep >= 0, "keep", $"must be >= 0, got {c.Keep}");
        Check(c.Resume is null || c.Resume.Trim().Length > 0, "resume", "expected latest or a checkpoint folder");
        Check((c.ClassPrompt is null) == (c.ClassImages is null), c.ClassPrompt is null ? "class-prompt" : "class-images",
            "prior preservation needs both --class-prompt and --class-images");
        Check(!c.PriorPreservation || c.NumClassImages >= 1, "num-class-images", $"must be >= 1, got {c.NumClassImages}");
        Check(c.PriorWeight >= 0 && double.IsFinite(c.PriorWeight), "prior-weight", $"must be >= 0, got {Fmt(c.PriorWeight)}");
        Check(c.ValidateEvery >= 0, "validate-every", $"must be >= 0, got {c.ValidateEvery}");
        Check(c.ValidateEvery == 0 || c.ValidationPrompts.Count > 0, "validate-every", "needs at least one --validation-prompt");
        Check(c.ValidationPrompts.All(p => !string.IsNullOrWhiteSpace(p)), "validation-prompt", "must not be empty");
        Check(c.LrWarmupSteps >= 0, "lr-warmup-steps", $"must be >= 0, got {c.LrWarmupSteps}");
        Check(c.LrNumCycles >= 1, "lr-num-cycles", $"must be >= 1, got {c.LrNumCycles}");
        Check(c.LrPower > 0 && double.IsFinite(c.LrPower), "lr-power", $"must be > 0, got {Fmt(c.LrPower)}");
        Check(c.LrEnd >= 0 && (c.LrScheduler != LrScheduleKind.Polynomial || c.LrEnd < c.Lr), "lr-end",
            $"must be >= 0 and smaller than --lr ({Fmt(c.Lr)}) for the polynomial schedule, got {Fmt(c.LrEnd)}");
        Check(c.SnrGamma is null || (c.SnrGamma > 0 && double.IsFinite(c.SnrGamma.Value)), "snr-gamma", $"must be > 0, got {c.SnrGamma}");
        Check(c.EmaDecay is null || c.EmaDecay is > 0 and < 1, "ema-decay", $"must be in (0, 1), got {c.EmaDecay}");
        Check(c.UnmaskedWeight is >= 0 and <= 1, "unmasked-weight", $"must be in [0, 1], got {Fmt(c.UnmaskedWeight)}");
        Check(c.NoiseOffset >= 0 && double.IsFinite(c.NoiseOffset), "noise-offset", $"must be >= 0, got {Fmt(c.NoiseOffset)}");
        Check(double.IsFinite(c.LogitMean), "logit-mean", $"must be finite, got {Fmt(c.LogitMean)}");
        Check(c.LogitStd > 0 && double.IsFinite(c.LogitStd), "logit-std", $"must be > 0, got {Fmt(c.LogitStd)}");
        Check(c.WeightDecay >= 0 && double.IsFinite(c.WeightDecay), "weight-decay", $"must be >= 0, got {Fmt(c.WeightDecay)}");
        Check(c.AdamBeta1 is >= 0 and < 1, "adam-beta1", $"must be in [0, 1), got {Fmt(c.AdamBeta1)}");
        Check(c.AdamBeta2 is >= 0 and < 1, "adam-beta2", $"must be in [0, 1), got {Fmt(c.AdamBeta2)}");
        Check(c.AdamEpsilon > 0 && double.IsFinite(c.AdamEpsilon), "adam-epsilon", $"must be > 0, got {Fmt(c.AdamEpsilon)}");
        Check(c.MaxGradNorm >= 0 && double.IsFinite(c.MaxGradNorm), "max-grad-norm", $"must be >= 0, got {Fmt(c.MaxGradNorm)}");
        Check(c.LoraPlusRatio > 0 && double.IsFinite(c.LoraPlusRatio), "loraplus-ratio", $"must be > 0, got {Fmt(c.LoraPlusRatio)}");
        Check(c.SingLoraRampSteps >= 0, "singlora-ramp-steps", $"must be >= 0, got {c.SingLoraRampSteps}");
        Check(c.SingLoraInitScale > 0 && double.IsFinite(c.SingLoraInitScale), "singlora-init-scale", $"must be > 0, got {Fmt(c.SingLoraInitScale)}");
        CheckParse(() => TorchOptions.CheckDType(c.DType), "dtype");
        CheckParse(() => TorchOptions.ParseDevice(c.Device, requireAvailable: false), "device");
        Check(c.CacheLatents == LatentCacheMode.None || c.Crop != CropMode.Random, "cache-latents",
            "cached latents freeze random crops: use --crop center or --cache-latents none");
        Check(!(c.Buckets && c.PriorPreservation), "buckets", "aspect-ratio buckets with prior preservation are not supported yet (class images would need their own buckets)");
        Check(c.PlotEvery >= 1, "plot-every", $"must be >= 1, got {c.PlotEvery}");
        Check(!c.WhitenConditioning || (c.Mode == TrainingMode.Full && !c.TrainTextEncoder), "whiten-conditioning",
            "is for --mode full with a frozen text encoder (without --train-text-encoder)");
        Check(c.WhitenStrength > 0 && c.WhitenStrength <= 1, "whiten-strength", $"must be in (0, 1], got {Fmt(c.WhitenStrength)}");
        Check(c.WhitenConditioning || c.WhitenStrength == 1, "whiten-strength", "is for --whiten-conditioning");

        if (errors.Count > 0)
            throw new TrainConfigException((source is null ? "invalid training configuration" : $"{source}: invalid training configuration") +
                                           ":\n  " + string.Join("\n  ", errors));
    }

    /// <summary>
    /// diffusers' --mixed_precision, kept readable for configs written before --dtype was the one switch: for adapter
    /// training "bf16" means a bf16 frozen base (= --dtype bf16), "no" means nothing.
    /// </summary>
    private const string LegacyMixedPrecisionKey = "mixed-precision";

    private static TrainConfig ApplyLegacyMixedPrecision(TrainConfig config, string? value, string where) =>
        value?.Trim().ToLowerInvariant() switch
        {
            "no" or "fp32" or "" or null => config,
            "bf16" => config with { DType = "bf16" },
            _ => throw new TrainConfigException($"{where}: '{LegacyMixedPrecisionKey}' expects no|bf16 (prefer --dtype), got '{value}'"),
        };

    private static string NormalizeKey(string key) => key.TrimStart('-').Trim().Replace('_', '-').ToLowerInvariant();

    private static string Suggest(string key)
    {
        var k = NormalizeKey(key);
        var best = Options.Select(o => (o.Key, d: Distance(k, o.Key))).MinBy(x => x.d);
        return best.d <= Math.Max(2, k.Length / 3) ? $" (did you mean '{best.Key}'?)" : "";
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    private static bool IsNull(YamlScalarNode s) =>
        s.Style == ScalarStyle.Plain && (s.Value is null or "" or "~" || s.Value.Equals("null", StringComparison.OrdinalIgnoreCase));

    private static string ScalarText(YamlNode n, string where, string key) =>
        n is YamlScalarNode s ? s.Value ?? "" : throw new TrainConfigException($"{where}: '{key}' list items must be plain values");

    private static object ConvertList(TrainOption option, IEnumerable<string> items, string where)
    {
        var element = option.ValueType.GetGenericArguments()[0];
        if (element == typeof(string)) return new EquatableList<string>(items);
        if (element == typeof(long)) return new EquatableList<long>(items.Select(t => (long)ParseNumber(typeof(long), t, option, where)));
        throw new NotSupportedException(option.ValueType.Name);
    }

    private static object? ConvertScalar(TrainOption option, string? text, string where)
    {
        var type = option.ValueType;
        var underlying = Nullable.GetUnderlyingType(type);
        bool nullable = underlying is not null || (type == typeof(string) && IsNullableString(option.Property));
        if (text is null)
            return nullable ? null : throw new TrainConfigException($"{where}: '{option.Key}' needs a value");
        var t = underlying ?? type;
        if (t == typeof(string)) return text;
        if (t == typeof(bool))
            return text.Trim().ToLowerInvariant() switch
            {
                "true" or "yes" or "on" or "1" => true,
                "false" or "no" or "off" or "0" => false,
                _ => throw new TrainConfigException($"{where}: '{option.Key}' expects true or false, got '{text}'"),
            };
        if (t.IsEnum)
            return ParseEnum(t, text) ?? throw new TrainConfigException($"{where}: '{option.Key}' expects one of {EnumNames(t)}, got '{text}'");
        return ParseNumber(t, text, option, where);
    }

    private static object ParseNumber(Type t, string text, TrainOption option, string where)
    {
        var s = text.Trim();
        var inv = CultureInfo.InvariantCulture;
        if (t == typeof(int) && int.TryParse(s, NumberStyles.Integer, inv, out int i)) return i;
        if (t == typeof(long) && long.TryParse(s, NumberStyles.Integer, inv, out long l)) return l;
        if (t == typeof(double) && double.TryParse(s, NumberStyles.Float, inv, out double d) && double.IsFinite(d)) return d;
        var kind = t == typeof(double) ? "a finite number" : "an integer";
        throw new TrainConfigException($"{where}: '{option.Key}' expects {kind}, got '{text}'");
    }

    private static bool IsNullableString(PropertyInfo p) =>
        new NullabilityInfoContext().Create(p).WriteState == NullabilityState.Nullable;

    /// <summary>The enum value whose config name (<see cref="EnumName"/>) is <paramref name="text"/>, '-' read as '_', any case; null if none.</summary>
    public static T? ParseEnum<T>(string text) where T : struct, Enum => (T?)ParseEnum(typeof(T), text);

    /// <summary>An enum's config names joined by '|', as error messages list them.</summary>
    public static string EnumNames(Type enumType) => string.Join("|", Enum.GetValues(enumType).Cast<Enum>().Select(EnumName));

    private static Enum? ParseEnum(Type enumType, string text)
    {
        var wanted = text.Trim().Replace('-', '_');
        return Enum.GetValues(enumType).Cast<Enum>().FirstOrDefault(v => string.Equals(EnumName(v), wanted, StringComparison.OrdinalIgnoreCase));
    }

    public static string EnumName(Enum value) =>
        value.GetType().GetField(value.ToString())?.GetCustomAttribute<EnumMemberAttribute>()?.Value ?? value.ToString().ToLowerInvariant();

    private static string FormatScalar(object value) => value switch
    {
        bool b => b ? "true" : "false",
        double d => Fmt(d),
        IFormattable f when value is not Enum => f.ToString(null, CultureInfo.InvariantCulture),
        Enum e => EnumName(e),
        _ => value.ToString() ?? "",
    };

    private static string Fmt(double d) => d.ToString("R", CultureInfo.InvariantCulture);
    private static YamlScalarNode Plain(string s) => new(s) { Style = ScalarStyle.Plain };
    private static YamlScalarNode Quoted(string s) => new(s) { Style = ScalarStyle.DoubleQuoted };
    private static YamlSequenceNode Sequence(IEnumerable<YamlNode> items) => new(items) { Style = SequenceStyle.Block };
}
