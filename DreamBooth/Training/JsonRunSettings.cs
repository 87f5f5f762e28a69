using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// Run settings kept as a JSON object (a pretraining stage's record, serialized): the checkpoint stores it as
/// <see cref="FileName"/>, and a resume is refused when a setting that is not resume-neutral differs.
/// </summary>
public sealed class JsonRunSettings : IRunSettings
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private readonly JsonObject _settings;
    private readonly IReadOnlySet<string> _resumeNeutral;

    public JsonRunSettings(JsonObject settings, IEnumerable<string>? resumeNeutralKeys = null, string fileName = "settings.json")
    {
        _settings = settings;
        _resumeNeutral = new HashSet<string>(resumeNeutralKeys ?? [], StringComparer.Ordinal);
        FileName = fileName;
        var hashed = new JsonObject();
        foreach (var (key, value) in settings.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            if (!_resumeNeutral.Contains(key)) hashed[key] = value?.DeepClone();
        Hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(hashed.ToJsonString())));
    }

    /// <summary>A record's public properties as settings (System.Text.Json's camel-less names).</summary>
    public static JsonRunSettings Of<T>(T record, IEnumerable<string>? resumeNeutralKeys = null, string fileName = "settings.json") =>
        new(JsonSerializer.SerializeToNode(record)!.AsObject(), resumeNeutralKeys, fileName);

    public string Hash { get; }
    public string FileName { get; }

    public void Save(string path) => AtomicFile.WriteAllText(path, _settings.ToJsonString(Indented));

    public IReadOnlyList<string> DifferencesFrom(string savedPath)
    {
        var saved = JsonNode.Parse(File.ReadAllText(savedPath)) as JsonObject ?? new JsonObject();
        return _settings.Select(kv => kv.Key).Concat(saved.Select(kv => kv.Key)).Distinct()
            .Where(k => !_resumeNeutral.Contains(k) && !JsonNode.DeepEquals(_settings[k], saved[k]))
            .Order(StringComparer.Ordinal).ToList();
    }
}
