using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DiffusionPeft.Diffusion.IO;

/// <summary>
/// Reads config.json files as diffusers and transformers write them. Python's json module writes the
/// non-standard literals NaN, Infinity and -Infinity (e.g. DPMSolver's lambda_min_clipped); they are
/// accepted here and read back as doubles. Unknown keys are simply not asked for. Reading is strict: a repeated
/// key, a value of the wrong JSON type (a string for a bool, a fraction for an integer, null in a list) or an
/// integer outside the int range is an <see cref="InvalidDataException"/> naming the file and the key.
/// </summary>
public sealed class ConfigJson
{
    /// <summary>Larger than any real config (a 1000-entry trained_betas list is 25 KB); bounds what parsing may allocate.</summary>
    public const long MaxFileBytes = 16 << 20;

    public string Source { get; }
    public JsonObject Root { get; }

    public ConfigJson(string source, JsonObject root) { Source = source; Root = root; }

    public static ConfigJson Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: config file not found.", path);
        long length = new FileInfo(path).Length;
        if (length > MaxFileBytes) throw new InvalidDataException($"{path}: config file is {length:N0} bytes, more than the {MaxFileBytes:N0} a config may have.");
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot read the config file: {ex.Message}", ex);
        }
        return Parse(text, path);
    }

    public static ConfigJson Parse(string json, string source = "<config>")
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(QuoteNonFiniteLiterals(json), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, AllowDuplicateProperties = false });
        }
        catch (JsonException ex) { throw new InvalidDataException($"{source}: invalid JSON: {ex.Message}", ex); }
        return node is JsonObject o ? new ConfigJson(source, o) : throw new InvalidDataException($"{source}: config is not a JSON object.");
    }

    /// <summary>A JSON array of values, for writing configs.</summary>
    public static JsonArray Array<T>(IEnumerable<T> values) => new(values.Select(v => JsonValue.Create(v)).ToArray<JsonNode?>());

    public bool Has(string key) => Root.TryGetPropertyValue(key, out var v) && v is not null;

    public int Int(string key, int fallback) => Has(key) ? Int(key) : fallback;
    public int Int(string key) => ToInt(Get(key), key, "an integer");
    public bool Bool(string key, bool fallback) => Has(key) ? Bool(key) : fallback;
    public bool Bool(string key) => Get(key) is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw Fault(key, "true or false");
    public string String(string key, string fallback) => Has(key) ? ToString(Get(key), key, "a string") : fallback;
    public string? StringOrNull(string key) => Has(key) ? ToString(Get(key), key, "a string") : null;

    public double Double(string key, double fallback) => Has(key) ? Double(key) : fallback;
    public double Double(string key) => ToDouble(Get(key), key);

    public int[] Ints(string key) => Get(key) is JsonArray a ? a.Select(n => ToInt(n, key, "an array of integers")).ToArray() : throw Fault(key, "an array of integers");
    public string[] Strings(string key) => Get(key) is JsonArray a ? a.Select(n => ToString(n, key, "an array of strings")).ToArray() : throw Fault(key, "an array of strings");
    public int[]? IntsOrNull(string key) => Has(key) ? Ints(key) : null;

    /// <summary>An int or a per-block list of ints (e.g. attention_head_dim), expanded to <paramref name="count"/> entries.</summary>
    public int[] IntOrInts(string key, int count, int fallback)
    {
        if (!Has(key)) return Enumerable.Repeat(fallback, count).ToArray();
        var node = Get(key);
        if (node is JsonArray) { var v = Ints(key); return v.Length == count ? v : throw Fault(key, $"{count} entries (one per block)"); }
        return Enumerable.Repeat(ToInt(node, key, "an integer or a list of integers"), count).ToArray();
    }

    /// <summary>A bool or a per-block list of bools (e.g. only_cross_attention), expanded to <paramref name="count"/> entries.</summary>
    public bool[] BoolOrBools(string key, int count, bool fallback)
    {
        if (!Has(key)) return Enumerable.Repeat(fallback, count).ToArray();
        if (Get(key) is not JsonArray a) return Enumerable.Repeat(Bool(key), count).ToArray();
        var v = a.Select(n => n is JsonValue jv && jv.TryGetValue<bool>(out var b) ? b : throw Fault(key, "true, false or a list of them")).ToArray();
        return v.Length == count ? v : throw Fault(key, $"{count} entries (one per block)");
    }

    public JsonNode Get(string key) =>
        Root.TryGetPropertyValue(key, out var v) && v is not null ? v : throw new InvalidDataException($"{Source}: missing config key '{key}'.");

    /// <summary>An error about one key's value: "SOURCE: config key 'KEY' FAULT."</summary>
    public InvalidDataException Invalid(string key, string fault) => new($"{Source}: config key '{key}' {fault}.");

    private double ToDouble(JsonNode? n, string key)
    {
        if (n is JsonValue v)
        {
            if (v.TryGetValue<double>(out var d)) return d;
            if (v.TryGetValue<long>(out var l)) return l;   // values set from code rather than parsed
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<string>(out var s))
                return s switch
                {
                    "NaN" => double.NaN,
                    "Infinity" => double.PositiveInfinity,
                    "-Infinity" => double.NegativeInfinity,
                    _ => throw Fault(key, "a number"),
                };
        }
        throw Fault(key, "a number");
    }

    private int ToInt(JsonNode? n, string key, string what)
    {
        double d;
        try { d = ToDouble(n, key); }
        catch (InvalidDataException) { throw Fault(key, what); }
        if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue) throw Fault(key, $"{what} (got {n!.ToJsonString()})");
        return (int)d;
    }

    private string ToString(JsonNode? n, string key, string what) =>
        n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Fault(key, what);

    private InvalidDataException Fault(string key, string what) => new($"{Source}: config key '{key}' should be {what}.");

    /// <summary>Turns the bare literals NaN / Infinity / -Infinity outside strings into quoted strings.</summary>
    public static string QuoteNonFiniteLiterals(string json)
    {
        var sb = new StringBuilder(json.Length + 16);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < json.Length) sb.Append(json[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; sb.Append(c); continue; }
            string? literal = Match(json, i, "-Infinity") ?? Match(json, i, "Infinity") ?? Match(json, i, "NaN");
            if (literal is not null) { sb.Append('"').Append(literal).Append('"'); i += literal.Length - 1; continue; }
            sb.Append(c);
        }
        return sb.ToString();
    }

    private static string? Match(string s, int i, string lit) =>
        string.CompareOrdinal(s, i, lit, 0, lit.Length) == 0 ? lit : null;
}
