using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Tests.Golden;

/// <summary>
/// The golden reference folder (../shared/golden by default, or $DPEFT_GOLDEN_DIR) and its manifest.
/// Conformance tests enumerate the manifest's cases of one kind, so a new case of a known kind needs no code.
/// </summary>
public static class GoldenData
{
    private static readonly Lazy<string> _dir = new(ResolveDir);
    private static readonly Lazy<JsonObject> _manifest = new(() =>
        (JsonObject)JsonNode.Parse(ConfigJson.QuoteNonFiniteLiterals(File.ReadAllText(Path.Combine(Dir, "manifest.json"))))!);

    public static string Dir => _dir.Value;
    public static JsonObject Manifest => _manifest.Value;

    public static JsonObject Case(string name) =>
        Manifest["cases"]![name] as JsonObject ?? throw new KeyNotFoundException($"golden case '{name}' is not in {Path.Combine(Dir, "manifest.json")}");

    /// <summary>xunit MemberData rows: one per manifest case of <paramref name="kind"/>.</summary>
    public static TheoryData<string> CasesOfKind(string kind)
    {
        var data = new TheoryData<string>();
        foreach (var name in CaseNames(kind)) data.Add(name);
        return data;
    }

    /// <summary>The manifest's cases of <paramref name="kind"/>, in manifest order.</summary>
    public static IReadOnlyList<string> CaseNames(string kind) =>
        ((JsonObject)Manifest["cases"]!).Where(kv => (string?)kv.Value!["kind"] == kind).Select(kv => kv.Key).ToList();

    /// <summary>A file of a case, given by its manifest "files" entry (e.g. "weights", "io") or a relative path.</summary>
    public static string FileOf(string caseName, string fileKey)
    {
        var files = Case(caseName)["files"] as JsonObject;
        var rel = files?[fileKey] is JsonValue v ? (string)v! : Path.Combine(caseName, fileKey);
        return Path.Combine(Dir, rel);
    }

    public static Tolerance ToleranceOf(string caseName) => Tolerance.From(Case(caseName)["tolerance"]);

    private static string ResolveDir()
    {
        var env = Environment.GetEnvironmentVariable("DPEFT_GOLDEN_DIR");
        var root = RepoRoot();
        if (!string.IsNullOrWhiteSpace(env))
        {
            var candidates = Path.IsPathRooted(env) ? new[] { Path.GetFullPath(env) } : new[] { Path.GetFullPath(env), Path.GetFullPath(Path.Combine(root, env)) };
            return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "manifest.json")))
                ?? throw new DirectoryNotFoundException($"DPEFT_GOLDEN_DIR={env}: no manifest.json there.");
        }
        var dir = Path.GetFullPath(Path.Combine(root, "..", "shared", "golden"));
        return File.Exists(Path.Combine(dir, "manifest.json")) ? dir
            : throw new DirectoryNotFoundException($"golden data not found at {dir}; set DPEFT_GOLDEN_DIR.");
    }

    /// <summary>The folder holding DiffusionPeft.sln, found upwards from the test assembly.</summary>
    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "DiffusionPeft.sln"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }
}

/// <summary>|actual - expected| &lt;= atol + rtol * |expected|, with optional per-tensor overrides ("exact" = 0, 0).</summary>
public sealed record Tolerance(double Atol, double Rtol, IReadOnlyDictionary<string, (double Atol, double Rtol)> PerTensor)
{
    public static readonly Tolerance Exact = new(0, 0, new Dictionary<string, (double, double)>());

    public (double Atol, double Rtol) For(string tensor) => PerTensor.TryGetValue(tensor, out var t) ? t : (Atol, Rtol);

    public static Tolerance From(JsonNode? node)
    {
        if (node is JsonValue v && v.TryGetValue<string>(out var s) && s == "exact") return Exact;
        if (node is not JsonObject o) throw new InvalidDataException($"unrecognised tolerance: {node?.ToJsonString()}");
        var per = new Dictionary<string, (double, double)>();
        if (o["per_tensor"] is JsonObject p)
            foreach (var (name, t) in p)
                per[name] = t is JsonObject to ? ((double)to["atol"]!, (double)to["rtol"]!) : (0, 0);
        return new Tolerance((double)o["atol"]!, (double)o["rtol"]!, per);
    }
}
