using System.Diagnostics;
using DiffusionPeft.Core.Imaging;
using Microsoft.ML.OnnxRuntime;

namespace DiffusionPeft.Metrics;

/// <summary>The three ONNX models and the CLIP tokenizer (text → input ids, e.g. <c>ClipTokenizer.EncodeForModel(t).InputIds</c>).</summary>
public sealed record FidelityModels(MetricModelPaths Paths, Func<string, long[]> Tokenize)
{
    /// <summary>What the models are, when they are not the real DINO / CLIP (e.g. <see cref="ToyEvaluatorFiles.Description"/>); reports show it.</summary>
    public string? Evaluators { get; init; }
}

public sealed record FidelityOptions
{
    /// <summary>Names the evaluated run in reports (adapter, checkpoint, step...).</summary>
    public string Label { get; init; } = "run";
    /// <summary>The unique identifier used in the prompts ("sks").</summary>
    public string Identifier { get; init; } = "sks";
    /// <summary>Score CLIP-T against the prompt without the identifier (recorded in the report).</summary>
    public bool ClipTWithoutIdentifier { get; init; }
    /// <summary>Folder for embedding caches (null: no disk cache).</summary>
    public string? CacheDir { get; init; }
    public int BatchSize { get; init; } = 16;
    /// <summary>ONNX Runtime intra-op threads (null: its default, all cores).</summary>
    public int? Threads { get; init; }
    /// <summary>Evaluate only these subject folders (null: every subject with generated images).</summary>
    public IReadOnlyCollection<string>? Subjects { get; init; }
    public IProgress<string>? Progress { get; init; }
}

public sealed record ModelInfo(string Role, string Path, string Sha256);

/// <summary>Everything one evaluation produced: inputs, models, scores, and the images (for galleries).</summary>
public sealed record FidelityReport
{
    public required string Label { get; init; }
    public required DateTime CreatedUtc { get; init; }
    public required string GeneratedDir { get; init; }
    public required string RealDir { get; init; }
    public required string Identifier { get; init; }
    public required bool ClipTWithoutIdentifier { get; init; }
    public required IReadOnlyList<ModelInfo> Models { get; init; }
    /// <summary>Set when the models are not the real DINO / CLIP, e.g. "toy-world (not real DINO/CLIP)"; null for the models as given.</summary>
    public string? Evaluators { get; init; }
    public required FidelityScores Scores { get; init; }
    /// <summary>Real-vs-real similarity of distinct real images of the same subject (the paper's "Real images" row).</summary>
    public required GroupScore RealVsReal { get; init; }
    public required IReadOnlyDictionary<string, IReadOnlyList<string>> RealImages { get; init; }
    /// <summary>Subjects of the protocol that were skipped, with the reason.</summary>
    public required IReadOnlyDictionary<string, string> Skipped { get; init; }
    /// <summary>Image files that were left out because they do not decode or carry no readable prompt, with the reason.</summary>
    public IReadOnlyDictionary<string, string> SkippedImages { get; init; } = new Dictionary<string, string>();
    public EmbeddingRunStats? Stats { get; init; }
}

/// <summary>
/// Runs the DreamBooth fidelity evaluation over folders: <c>realDir/&lt;subject&gt;/*</c> holds the subject's real
/// images and <c>generatedDir/&lt;subject&gt;/**</c> the generated ones. A generated image's prompt comes from its PNG
/// text chunk <c>prompt</c>, else the prompt line of an AUTOMATIC1111 <c>parameters</c> chunk, else a sidecar
/// <c>&lt;image&gt;.txt</c>.
/// </summary>
public static class FidelityEvaluation
{
    /// <summary><paramref name="subjectsManifest"/>: a subjects CSV (subject,class,kind) or a prompts folder holding one.</summary>
    public static FidelityReport Run(string subjectsManifest, string generatedDir, string realDir, FidelityModels models, FidelityOptions? options = null)
    {
        options ??= new FidelityOptions();
        var subjects = Directory.Exists(subjectsManifest)
            ? DreamBoothProtocol.LoadSubjects(Path.Combine(subjectsManifest, DreamBoothProtocol.SubjectsFile))
            : DreamBoothProtocol.LoadSubjects(subjectsManifest);
        if (!Directory.Exists(generatedDir)) throw new DirectoryNotFoundException($"generated images folder not found: {generatedDir}");
        if (!Directory.Exists(realDir)) throw new DirectoryNotFoundException($"real images folder not found: {realDir}");

        var skipped = new Dictionary<string, string>();
        var skippedImages = new SortedDictionary<string, string>(StringComparer.Ordinal);
        void SkipImage(string path, string reason)
        {
            skippedImages[path] = reason;
            options.Progress?.Report($"skipping {path}: {reason}");
        }
        var plan = new List<(DreamBoothSubject Subject, List<string> Real, List<(string Path, string Prompt)> Generated)>();
        foreach (var s in subjects)
        {
            if (options.Subjects is { } only && !only.Contains(s.Folder)) continue;
            var gdir = Path.Combine(generatedDir, s.Folder);
            var rdir = Path.Combine(realDir, s.Folder);
            var gen = Directory.Exists(gdir) ? ImagesIn(gdir, SearchOption.AllDirectories).Where(p => !ImageGrid.IsContactSheet(p)).ToList() : [];
            var real = Directory.Exists(rdir) ? ImagesIn(rdir, SearchOption.TopDirectoryOnly) : [];
            if (gen.Count == 0) { skipped[s.Folder] = $"no generated images in {gdir}"; continue; }
            if (real.Count == 0) { skipped[s.Folder] = $"no real images in {rdir}"; continue; }
            var prompted = new List<(string, string)>();
            foreach (var p in gen)
            {
                try { prompted.Add((p, PromptOf(p))); }
                catch (Exception ex) when (ex is ImageDecodeException or InvalidDataException or IOException or UnauthorizedAccessException)
                {
                    SkipImage(p, ex is ImageDecodeException d ? d.Fault : ex.Message);
                }
            }
            if (prompted.Count == 0) { skipped[s.Folder] = $"none of its generated images in {gdir} has a readable prompt"; continue; }
            plan.Add((s, real, prompted));
        }
        if (plan.Count == 0)
            throw new InvalidDataException($"nothing to evaluate: no subject has both generated images under {generatedDir} and real images under {realDir}" +
                (skipped.Count > 0 ? $" ({skipped.First().Key}: {skipped.First().Value})" : ""));

        using var sessionOptions = new SessionOptions();
        if (options.Threads is int t) sessionOptions.IntraOpNumThreads = t;
        using var dino = new DinoEmbedder(models.Paths.Dino, options: sessionOptions);
        using var clipImage = new ClipImageEmbedder(models.Paths.ClipVision, options: sessionOptions);
        using var clipText = new ClipTextEmbedder(models.Paths.ClipText, models.Tokenize, sessionOptions);
        using var dinoCache = EmbeddingCache.Open(options.CacheDir, dino.Identity);
        using var clipCache = EmbeddingCache.Open(options.CacheDir, clipImage.Identity);
        var runner = new ImageEmbeddingRunner([dino, clipImage], [dinoCache, clipCache], options.BatchSize);

        var allPaths = plan.SelectMany(p => p.Real.Concat(p.Generated.Select(g => g.Path))).Distinct().ToList();
        options.Progress?.Report($"embedding {allPaths.Count} images ({plan.Count} subjects)");
        var undecodable = new Dictionary<string, string>(StringComparer.Ordinal);
        var (emb, stats) = runner.Embed(allPaths, new Progress<int>(n => options.Progress?.Report($"embedded {n}/{allPaths.Count}")), undecodable);
        foreach (var (path, reason) in undecodable) SkipImage(path, reason);
        var index = allPaths.Select((p, i) => (p, i)).ToDictionary(x => x.p, x => x.i);
        // A subject keeps its usable images; one left with none on either side is skipped like a subject without images.
        plan = plan.Select(p => (p.Subject, p.Real.Where(r => !skippedImages.ContainsKey(r)).ToList(), p.Generated.Where(g => !skippedImages.ContainsKey(g.Path)).ToList())).ToList();
        foreach (var p in plan.Where(p => p.Real.Count == 0 || p.Generated.Count == 0))
            skipped[p.Subject.Folder] = $"none of its {(p.Real.Count == 0 ? "real" : "generated")} images could be used (see the skipped images)";
        plan.RemoveAll(p => p.Real.Count == 0 || p.Generated.Count == 0);
        if (plan.Count == 0)
            throw new InvalidDataException($"nothing to evaluate: no subject has usable generated and real images ({skippedImages.Count} image(s) skipped, e.g. " +
                                           $"{skippedImages.FirstOrDefault().Key}: {skippedImages.FirstOrDefault().Value})");

        // A subject with its own identifier (a fourth CSV column) is matched and stripped by it; the others by the run's.
        string ClipTPrompt(string prompt, DreamBoothSubject subject) =>
            options.ClipTWithoutIdentifier ? DreamBoothProtocol.RemoveIdentifier(prompt, subject.IdentifierOr(options.Identifier)) : prompt;
        var texts = plan.SelectMany(p => p.Generated.Select(g => ClipTPrompt(g.Prompt, p.Subject))).Distinct().ToList();
        var textEmb = texts.Zip(EmbedTexts(clipText, texts, options.BatchSize)).ToDictionary(x => x.First, x => x.Second);

        var subjectsEmb = plan.Select(p => new SubjectEmbeddings(p.Subject.Folder, p.Real,
            p.Real.Select(r => emb[0][index[r]]).ToList(), p.Real.Select(r => emb[1][index[r]]).ToList(),
            p.Generated.Select(g => new GeneratedEmbeddings(g.Path, g.Prompt,
                DreamBoothProtocol.TemplateOf(g.Prompt, p.Subject.IdentifierOr(options.Identifier), p.Subject.ClassNoun), ClipTPrompt(g.Prompt, p.Subject),
                emb[0][index[g.Path]], emb[1][index[g.Path]], textEmb[ClipTPrompt(g.Prompt, p.Subject)])).ToList())).ToList();

        return new FidelityReport
        {
            Label = options.Label,
            CreatedUtc = DateTime.UtcNow,
            GeneratedDir = Path.GetFullPath(generatedDir),
            RealDir = Path.GetFullPath(realDir),
            Identifier = options.Identifier,
            ClipTWithoutIdentifier = options.ClipTWithoutIdentifier,
            Models =
            [
                new("dino", models.Paths.Dino, ShaOf(dino.Identity)),
                new("clip_vision", models.Paths.ClipVision, ShaOf(clipImage.Identity)),
                new("clip_text", models.Paths.ClipText, ShaOf(clipText.Identity)),
            ],
            Evaluators = models.Evaluators ?? ToyEvaluatorFiles.DescribeFolderOf(models.Paths),
            Scores = FidelityScorer.Score(subjectsEmb),
            RealVsReal = FidelityScorer.RealVsReal(subjectsEmb),
            RealImages = plan.ToDictionary(p => p.Subject.Folder, p => (IReadOnlyList<string>)p.Real),
            Skipped = skipped,
            SkippedImages = new Dictionary<string, string>(skippedImages, StringComparer.Ordinal),
            Stats = stats,
        };
    }

    private static string ShaOf(string identity) =>
        identity.Split('|').FirstOrDefault(x => x.StartsWith("onnx-sha256:"))?["onnx-sha256:".Length..] ?? "";

    private static List<float[]> EmbedTexts(ClipTextEmbedder embedder, List<string> texts, int batch)
    {
        var result = new List<float[]>(texts.Count);
        for (int i = 0; i < texts.Count; i += batch) result.AddRange(embedder.Embed(texts.Skip(i).Take(batch).ToList()));
        return result;
    }

    private static List<string> ImagesIn(string dir, SearchOption option) =>
        Directory.EnumerateFiles(dir, "*", option).Where(ImageLoader.IsImageFile)
            .Where(p => !Path.GetFileName(p).StartsWith('.')).OrderBy(p => p, StringComparer.Ordinal).ToList();

    /// <summary>The prompt a generated image was made with (see the class summary for where it is looked up).</summary>
    public static string PromptOf(string imagePath)
    {
        if (Path.GetExtension(imagePath).Equals(".png", StringComparison.OrdinalIgnoreCase))
        {
            var chunks = PngText.Read(imagePath);
            if (PngText.Get(chunks, "prompt") is { Length: > 0 } p) return p.Trim();
            if (PngText.Get(chunks, "parameters") is { Length: > 0 } a) return A1111Prompt(a);
        }
        var sidecar = Path.ChangeExtension(imagePath, ".txt");
        if (File.Exists(sidecar)) return File.ReadAllText(sidecar).Trim();
        throw new InvalidDataException($"{imagePath}: no prompt found (expected a PNG text chunk 'prompt' or 'parameters', or a sidecar {Path.GetFileName(sidecar)})");
    }

    /// <summary>The prompt of an AUTOMATIC1111 "parameters" text: the lines before "Negative prompt:" / the settings line.</summary>
    public static string A1111Prompt(string parameters)
    {
        var lines = parameters.Replace("\r\n", "\n").Split('\n').ToList();
        int end = lines.FindIndex(l => l.StartsWith("Negative prompt:", StringComparison.Ordinal));
        if (end < 0) end = lines.FindLastIndex(l => l.StartsWith("Steps:", StringComparison.Ordinal));
        if (end < 0) end = lines.Count;
        return string.Join("\n", lines.Take(end)).Trim();
    }
}
