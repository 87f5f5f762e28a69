namespace DiffusionPeft.Metrics;

/// <summary>A generated image with its embeddings; <see cref="PromptKey"/> groups images across subjects (the template).</summary>
public sealed record GeneratedEmbeddings(string Path, string Prompt, string PromptKey, string ClipTPrompt, float[] Dino, float[] ClipImage, float[] ClipText);

/// <summary>The real (reference) images of a subject and the images generated for it.</summary>
public sealed record SubjectEmbeddings(string Subject, IReadOnlyList<string> RealPaths, IReadOnlyList<float[]> RealDino,
    IReadOnlyList<float[]> RealClip, IReadOnlyList<GeneratedEmbeddings> Generated);

/// <summary>Scores of one generated image: DINO and CLIP-I are means over the subject's real images.</summary>
public sealed record ImageScore(string Subject, string Path, string Prompt, string PromptKey, string ClipTPrompt, double Dino, double ClipI, double ClipT);

public sealed record GroupScore(string Name, Stat Dino, Stat ClipI, Stat ClipT);

public sealed record FidelityScores(
    IReadOnlyList<ImageScore> PerImage,
    IReadOnlyList<GroupScore> PerPrompt,
    IReadOnlyList<GroupScore> PerSubject,
    GroupScore Overall,
    GroupScore SubjectAveraged);

/// <summary>
/// DreamBooth fidelity metrics (Ruiz et al. 2023): DINO and CLIP-I are the mean pairwise cosine between
/// L2-normalised embeddings of a subject's generated and real images; CLIP-T is the mean cosine between each
/// generated image and its prompt. Per-image values average over the subject's real images, so a subject's
/// mean over images equals its mean over all (generated, real) pairs.
/// </summary>
public static class FidelityScorer
{
    public static ImageScore ScoreImage(string subject, GeneratedEmbeddings g, IReadOnlyList<double[]> realDino, IReadOnlyList<double[]> realClip)
    {
        var gd = Similarity.Normalized(g.Dino);
        var gc = Similarity.Normalized(g.ClipImage);
        double dino = realDino.Count == 0 ? double.NaN : realDino.Average(r => Similarity.Dot(gd, r));
        double clipI = realClip.Count == 0 ? double.NaN : realClip.Average(r => Similarity.Dot(gc, r));
        double clipT = Similarity.Dot(gc, Similarity.Normalized(g.ClipText));
        return new ImageScore(subject, g.Path, g.Prompt, g.PromptKey, g.ClipTPrompt, dino, clipI, clipT);
    }

    public static FidelityScores Score(IReadOnlyList<SubjectEmbeddings> subjects)
    {
        var perImage = new List<ImageScore>();
        foreach (var s in subjects)
        {
            var rd = s.RealDino.Select(r => Similarity.Normalized(r)).ToArray();
            var rc = s.RealClip.Select(r => Similarity.Normalized(r)).ToArray();
            perImage.AddRange(s.Generated.Select(g => ScoreImage(s.Subject, g, rd, rc)));
        }
        var perSubject = Group(perImage, i => i.Subject);
        var perPrompt = Group(perImage, i => i.PromptKey);
        var overall = Summarize("overall", perImage);
        var subjectAveraged = new GroupScore("mean of subjects",
            Stat.Of(perSubject.Select(s => s.Dino.Mean)), Stat.Of(perSubject.Select(s => s.ClipI.Mean)), Stat.Of(perSubject.Select(s => s.ClipT.Mean)));
        return new FidelityScores(perImage, perPrompt, perSubject, overall, subjectAveraged);
    }

    private static List<GroupScore> Group(IEnumerable<ImageScore> images, Func<ImageScore, string> key) =>
        images.GroupBy(key).Select(g => Summarize(g.Key, g.ToList())).ToList();

    public static GroupScore Summarize(string name, IReadOnlyCollection<ImageScore> images) =>
        new(name, Stat.Of(images.Select(i => i.Dino)), Stat.Of(images.Select(i => i.ClipI)), Stat.Of(images.Select(i => i.ClipT)));

    /// <summary>Similarity between distinct real images of each subject (pairs i &lt; j): the ceiling the paper reports as "Real images".</summary>
    public static GroupScore RealVsReal(IReadOnlyList<SubjectEmbeddings> subjects)
    {
        static IEnumerable<double> Pairs(IReadOnlyList<float[]> e)
        {
            var n = e.Select(x => Similarity.Normalized(x)).ToArray();
            for (int i = 0; i < n.Length; i++)
                for (int j = i + 1; j < n.Length; j++) yield return Similarity.Dot(n[i], n[j]);
        }
        return new GroupScore("real vs real",
            Stat.Of(subjects.SelectMany(s => Pairs(s.RealDino))), Stat.Of(subjects.SelectMany(s => Pairs(s.RealClip))), Stat.Empty);
    }
}
