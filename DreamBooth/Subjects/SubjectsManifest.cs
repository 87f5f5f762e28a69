using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.Core.IO;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace DiffusionPeft.DreamBooth.Subjects;

/// <summary>One subject to personalize: its image folder, rare identifier ("sks") and class noun ("dog").</summary>
public sealed record Subject(string Name, string Folder, string Identifier, string Class);

/// <summary>
/// A list of subjects, CSV (header <c>folder,identifier,class</c>, optional <c>name</c>) or YAML (a list of
/// mappings with the same keys, or a mapping with a <c>subjects</c> list). Relative folders are relative to the
/// manifest. Each subject becomes its own <see cref="TrainConfig"/> with its own run folder; <c>--shard K/N</c>
/// keeps subjects i with i mod N = K − 1.
/// </summary>
public static class SubjectsManifest
{
    public const string DefaultPrompt = "a photo of {identifier} {class}", DefaultClassPrompt = "a photo of {class}";

    public static IReadOnlyList<Subject> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"subjects manifest '{path}' does not exist", path);
        var ext = Path.GetExtension(path).ToLowerInvariant();
        var rows = ext is ".yaml" or ".yml" ? ReadYaml(path) : ext == ".csv" ? ReadCsv(path)
            : throw new InvalidDataException($"subjects manifest '{path}': expected a .csv, .yaml or .yml file");
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var subjects = new List<Subject>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (where, row) in rows)
        {
            string Field(string key) => row.TryGetValue(key, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim()
                : throw new InvalidDataException($"{path}, {where}: missing '{key}'");
            var folder = Path.GetFullPath(Path.Combine(baseDir, Field("folder")));
            var name = SafeName(row.TryGetValue("name", out var n) && !string.IsNullOrWhiteSpace(n) ? n : Path.GetFileName(folder.TrimEnd(Path.DirectorySeparatorChar)));
            if (!names.Add(name)) throw new InvalidDataException($"{path}, {where}: subject name '{name}' is used twice (add a 'name' column to tell them apart)");
            subjects.Add(new Subject(name, folder, Field("identifier"), Field("class")));
        }
        if (subjects.Count == 0) throw new InvalidDataException($"subjects manifest '{path}' lists no subjects");
        return subjects;
    }

    /// <summary>
    /// The runs of the subjects this shard owns. Prompts in <paramref name="baseConfig"/> may use {identifier} and
    /// {class}; empty ones default to "a photo of {identifier} {class}" / "a photo of {class}". With prior
    /// preservation, class images go to CLASS_IMAGES/&lt;class&gt; (shared by subjects of the same class).
    /// </summary>
    public static IReadOnlyList<(Subject Subject, TrainConfig Config)> Plan(TrainConfig baseConfig, IReadOnlyList<Subject> subjects, Shard shard)
    {
        var result = new List<(Subject, TrainConfig)>();
        for (int i = 0; i < subjects.Count; i++)
        {
            if (!shard.Owns(i)) continue;
            var s = subjects[i];
            string Fill(string template) => template.Replace("{identifier}", s.Identifier).Replace("{class}", s.Class);
            var config = baseConfig with
            {
                Images = s.Folder,
                Prompt = Fill(string.IsNullOrWhiteSpace(baseConfig.Prompt) ? DefaultPrompt : baseConfig.Prompt),
                Out = Path.Combine(baseConfig.Out, s.Name),
                ValidationPrompts = new EquatableList<string>(baseConfig.ValidationPrompts.Select(Fill)),
            };
            if (baseConfig.PriorPreservation)
                config = config with
                {
                    ClassPrompt = Fill(baseConfig.ClassPrompt ?? DefaultClassPrompt),
                    ClassImages = Path.Combine(baseConfig.ClassImages!, SafeName(s.Class)),
                };
            result.Add((s, config));
        }
        return result;
    }

    public static string SafeName(string text)
    {
        var invalid = Path.GetInvalidFileNameChars();
        var cleaned = new string(text.Trim().Select(c => invalid.Contains(c) || char.IsWhiteSpace(c) ? '_' : c).ToArray());
        return cleaned.Length == 0 ? "_" : cleaned;
    }

    private static IEnumerable<(string Where, Dictionary<string, string> Row)> ReadCsv(string path)
    {
        var lines = File.ReadAllLines(path);
        int headerIndex = Array.FindIndex(lines, l => !string.IsNullOrWhiteSpace(l) && !l.TrimStart().StartsWith('#'));
        if (headerIndex < 0) yield break;
        var header = SplitCsv(lines[headerIndex]).Select(h => h.Trim().ToLowerInvariant()).ToArray();
        foreach (var required in new[] { "folder", "identifier", "class" })
            if (!header.Contains(required))
                throw new InvalidDataException($"{path}, line {headerIndex + 1}: the header needs columns folder,identifier,class (got {string.Join(",", header)})");
        for (int i = headerIndex + 1; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]) || lines[i].TrimStart().StartsWith('#')) continue;
            var cells = SplitCsv(lines[i]);
            if (cells.Count != header.Length)
                throw new InvalidDataException($"{path}, line {i + 1}: {cells.Count} fields, the header has {header.Length}");
            yield return ($"line {i + 1}", header.Zip(cells).ToDictionary(p => p.First, p => p.Second));
        }
    }

    /// <summary>RFC 4180 fields: commas, double quotes around fields, "" inside quotes.</summary>
    private static List<string> SplitCsv(string line)
    {
        var cells = new List<string>();
        var cell = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { cell.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else cell.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { cells.Add(cell.ToString()); cell.Clear(); }
            else cell.Append(c);
        }
        cells.Add(cell.ToString());
        return cells;
    }

    private static IEnumerable<(string Where, Dictionary<string, string> Row)> ReadYaml(string path)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(File.ReadAllText(path))); }
        catch (YamlException ex) { throw new InvalidDataException($"{path}: invalid YAML at line {ex.Start.Line}: {ex.Message}"); }
        if (stream.Documents.Count == 0) yield break;
        var root = stream.Documents[0].RootNode;
        if (root is YamlMappingNode m && m.Children.TryGetValue(new YamlScalarNode("subjects"), out var list)) root = list;
        if (root is not YamlSequenceNode seq) throw new InvalidDataException($"{path}: expected a list of subjects (folder, identifier, class)");
        foreach (var item in seq)
        {
            var where = $"line {item.Start.Line}";
            if (item is not YamlMappingNode map) throw new InvalidDataException($"{path}, {where}: each subject must be a mapping with folder, identifier, class");
            var row = new Dictionary<string, string>();
            foreach (var (k, v) in map.Children)
            {
                var key = ((k as YamlScalarNode)?.Value ?? "").Trim().ToLowerInvariant();
                if (key is not ("folder" or "identifier" or "class" or "name"))
                    throw new InvalidDataException($"{path}, line {k.Start.Line}: unknown key '{key}' (expected folder, identifier, class, name)");
                row[key] = (v as YamlScalarNode)?.Value ?? throw new InvalidDataException($"{path}, line {v.Start.Line}: '{key}' must be a plain value");
            }
            yield return (where, row);
        }
    }
}
