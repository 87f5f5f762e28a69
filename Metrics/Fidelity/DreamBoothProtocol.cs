namespace DiffusionPeft.Metrics;

public enum SubjectKind { Object, Live }

/// <summary>
/// A DreamBooth dataset subject: its folder name, class noun ("dog", "stuffed animal") and kind, and its own rare
/// identifier where the subjects CSV gives one (a fourth column; the paper uses one identifier, "sks", for all).
/// </summary>
public sealed record DreamBoothSubject(string Folder, string ClassNoun, SubjectKind Kind, string? Identifier = null)
{
    /// <summary>This subject's identifier, else the run's.</summary>
    public string IdentifierOr(string fallback) => Identifier ?? fallback;
}

/// <summary>
/// The DreamBooth evaluation protocol (Ruiz et al. 2023, google/dreambooth dataset/prompts_and_classes.txt):
/// 30 subjects and 25 prompt templates per kind, <c>{0}</c> the unique identifier, <c>{1}</c> the class noun.
/// Read from <c>prompts/dreambooth_subjects.csv</c>, <c>dreambooth_object_prompts.txt</c>, <c>dreambooth_live_prompts.txt</c>.
/// </summary>
public sealed class DreamBoothProtocol
{
    public const string SubjectsFile = "dreambooth_subjects.csv";
    public const string ObjectPromptsFile = "dreambooth_object_prompts.txt";
    public const string LivePromptsFile = "dreambooth_live_prompts.txt";

    public IReadOnlyList<DreamBoothSubject> Subjects { get; }
    public IReadOnlyList<string> ObjectPrompts { get; }
    public IReadOnlyList<string> LivePrompts { get; }

    public DreamBoothProtocol(IReadOnlyList<DreamBoothSubject> subjects, IReadOnlyList<string> objectPrompts, IReadOnlyList<string> livePrompts)
    {
        Subjects = subjects;
        ObjectPrompts = objectPrompts;
        LivePrompts = livePrompts;
    }

    /// <summary>Reads the three files from <paramref name="promptsDir"/> (default: the repository's prompts/ folder).</summary>
    public static DreamBoothProtocol Load(string? promptsDir = null)
    {
        var dir = promptsDir ?? FindPromptsDir();
        return new DreamBoothProtocol(LoadSubjects(Path.Combine(dir, SubjectsFile)),
            LoadTemplates(Path.Combine(dir, ObjectPromptsFile)), LoadTemplates(Path.Combine(dir, LivePromptsFile)));
    }

    public IReadOnlyList<string> TemplatesFor(DreamBoothSubject s) => s.Kind == SubjectKind.Live ? LivePrompts : ObjectPrompts;

    /// <summary>The subject's prompts, filled with its own identifier where it has one, else <paramref name="identifier"/>.</summary>
    public IReadOnlyList<string> PromptsFor(DreamBoothSubject s, string identifier) =>
        TemplatesFor(s).Select(t => Fill(t, s.IdentifierOr(identifier), s.ClassNoun)).ToList();

    public DreamBoothSubject Subject(string folder) =>
        Subjects.FirstOrDefault(s => s.Folder == folder) ?? throw new KeyNotFoundException($"'{folder}' is not a subject of the protocol");

    public static string Fill(string template, string identifier, string classNoun) =>
        template.Replace("{0}", identifier).Replace("{1}", classNoun);

    /// <summary>The prompt without the identifier word ("a sks dog" → "a dog"), for CLIP-T against a text encoder that never saw it.</summary>
    public static string RemoveIdentifier(string prompt, string identifier)
    {
        if (string.IsNullOrWhiteSpace(identifier)) return prompt;
        var words = prompt.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return string.Join(' ', words.Where(w => !string.Equals(w, identifier, StringComparison.Ordinal)));
    }

    /// <summary>The template a prompt came from, if it was filled with this identifier and class noun; else the prompt.</summary>
    public static string TemplateOf(string prompt, string identifier, string classNoun)
    {
        var phrase = $"{identifier} {classNoun}";
        return !string.IsNullOrEmpty(identifier) && prompt.Contains(phrase, StringComparison.Ordinal)
            ? prompt.Replace(phrase, "{0} {1}") : prompt;
    }

    public static IReadOnlyList<DreamBoothSubject> LoadSubjects(string csvPath)
    {
        var lines = ReadLines(csvPath);
        var header = lines.Count == 0 ? "" : lines[0].Text.Replace(" ", "").ToLowerInvariant();
        if (header is not ("subject,class,kind" or "subject,class,kind,identifier"))
            throw new InvalidDataException($"{csvPath}: the first line must be the header 'subject,class,kind' or 'subject,class,kind,identifier'");
        int columns = header.Split(',').Length;
        var subjects = new List<DreamBoothSubject>();
        foreach (var (no, text) in lines.Skip(1))
        {
            var f = text.Split(',').Select(x => x.Trim()).ToArray();
            if (f.Length != columns || f.Any(string.IsNullOrEmpty))
                throw new InvalidDataException($"{csvPath}:{no}: expected '{header}', got '{text}'");
            var kind = f[2].ToLowerInvariant() switch
            {
                "object" => SubjectKind.Object,
                "live" => SubjectKind.Live,
                _ => throw new InvalidDataException($"{csvPath}:{no}: kind must be 'object' or 'live', got '{f[2]}'"),
            };
            if (subjects.Any(s => s.Folder == f[0])) throw new InvalidDataException($"{csvPath}:{no}: subject '{f[0]}' is listed twice");
            if (columns == 4 && f[3].Any(char.IsWhiteSpace)) throw new InvalidDataException($"{csvPath}:{no}: the identifier '{f[3]}' must be one word");
            subjects.Add(new DreamBoothSubject(f[0], f[1], kind, columns == 4 ? f[3] : null));
        }
        return subjects;
    }

    public static IReadOnlyList<string> LoadTemplates(string path)
    {
        var templates = ReadLines(path).Select(l => l.Text).ToList();
        foreach (var t in templates)
            if (!t.Contains("{0}") || !t.Contains("{1}"))
                throw new InvalidDataException($"{path}: template '{t}' lacks the {{0}} (identifier) or {{1}} (class noun) placeholder");
        return templates;
    }

    private static List<(int No, string Text)> ReadLines(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"protocol file not found: {path}", path);
        return File.ReadAllLines(path).Select((l, i) => (i + 1, l.Trim())).Where(l => l.Item2.Length > 0 && !l.Item2.StartsWith('#')).ToList();
    }

    /// <summary>The repository's prompts/ folder, found upwards from the application and the working directory.</summary>
    public static string FindPromptsDir()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "prompts", SubjectsFile))) return Path.Combine(d.FullName, "prompts");
        throw new DirectoryNotFoundException($"prompts/{SubjectsFile} not found above {AppContext.BaseDirectory}; pass the prompts folder explicitly");
    }
}
