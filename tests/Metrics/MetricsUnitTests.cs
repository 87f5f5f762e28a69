using DiffusionPeft.Metrics;

namespace DiffusionPeft.Tests.Metrics;

public sealed class MetricsUnitTests
{
    [Fact]
    public void ProtocolHasThirtySubjectsAndTwentyFivePromptsPerKind()
    {
        var p = DreamBoothProtocol.Load(Path.Combine(Golden.GoldenData.RepoRoot(), "prompts"));
        Assert.Equal(30, p.Subjects.Count);
        Assert.Equal(21, p.Subjects.Count(s => s.Kind == SubjectKind.Object));
        Assert.Equal(9, p.Subjects.Count(s => s.Kind == SubjectKind.Live));
        Assert.Equal(15, p.Subjects.Select(s => s.ClassNoun).Distinct().Count());
        Assert.Equal(25, p.ObjectPrompts.Count);
        Assert.Equal(25, p.LivePrompts.Count);
        var dog = p.Subject("dog");
        Assert.Equal(SubjectKind.Live, dog.Kind);
        Assert.Equal("a sks dog wearing a santa hat", p.PromptsFor(dog, "sks")[11]);
        Assert.Equal("a sks stuffed animal in the jungle", p.PromptsFor(p.Subject("bear_plushie"), "sks")[0]);
        Assert.Equal("a dog wearing a santa hat", DreamBoothProtocol.RemoveIdentifier("a sks dog wearing a santa hat", "sks"));
        Assert.Equal("a {0} {1} in the snow", DreamBoothProtocol.TemplateOf("a sks stuffed animal in the snow", "sks", "stuffed animal"));
    }

    /// <summary>A fourth CSV column gives each subject its own identifier (the toy world's subjects each have one).</summary>
    [Fact]
    public void SubjectsMayCarryTheirOwnIdentifier()
    {
        var p = DreamBoothProtocol.Load(Path.Combine(DreamBoothProtocol.FindPromptsDir(), "toyworld"));
        var star = p.Subject("sunny_star");
        Assert.Equal("sks", star.Identifier);
        Assert.Equal("zwx", p.Subject("dotted_circle").Identifier);
        Assert.StartsWith("a zwx circle", p.PromptsFor(p.Subject("dotted_circle"), "sks")[0]);
        Assert.All(p.Subjects, s => Assert.NotNull(s.Identifier));
        Assert.Null(DreamBoothProtocol.Load().Subject("dog").Identifier);
        var dir = Directory.CreateTempSubdirectory("dpeft-proto-").FullName;
        try
        {
            var csv = Path.Combine(dir, "s.csv");
            File.WriteAllText(csv, "subject,class,kind,identifier\ndog,dog,live,sks\ncat,cat,live\n");
            Assert.Contains("s.csv:3", Assert.Throws<InvalidDataException>(() => DreamBoothProtocol.LoadSubjects(csv)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ProtocolFilesWithErrorsAreRejectedWithFileAndLine()
    {
        var dir = Directory.CreateTempSubdirectory("dpeft-proto-").FullName;
        try
        {
            var csv = Path.Combine(dir, "s.csv");
            File.WriteAllText(csv, "subject,class,kind\ndog,dog,live\ncat,cat,plant\n");
            var e = Assert.Throws<InvalidDataException>(() => DreamBoothProtocol.LoadSubjects(csv));
            Assert.Contains("s.csv:3", e.Message);
            var t = Path.Combine(dir, "t.txt");
            File.WriteAllText(t, "a {0} in the snow\n");
            Assert.Contains("{1}", Assert.Throws<InvalidDataException>(() => DreamBoothProtocol.LoadTemplates(t)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void CacheSurvivesATornLastRecord()
    {
        var dir = Directory.CreateTempSubdirectory("dpeft-cache-").FullName;
        try
        {
            string Key(int i) => EmbeddingCache.KeyOf(BitConverter.GetBytes(i));
            string file;
            using (var cache = EmbeddingCache.Open(dir, "model-a|prep"))
            {
                cache.Add([(Key(1), new[] { 1f, 2f, 3f }), (Key(2), new[] { 4f, 5f, 6f })]);
                cache.Add([(Key(3), new[] { 7f, 8f, 9f })]);
                file = cache.FilePath!;
            }
            // A crash in the middle of appending record 4: only part of it reached the disk.
            var len = new FileInfo(file).Length;
            using (var fs = new FileStream(file, FileMode.Append)) fs.Write(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 3, 0, 0, 0, 1, 2 });
            using (var cache = EmbeddingCache.Open(dir, "model-a|prep"))
            {
                Assert.Equal(3, cache.Count);
                Assert.Equal(38, cache.RecoveredBytes);
                Assert.Equal(len, new FileInfo(file).Length);
                Assert.True(cache.TryGet(Key(3), out var v3));
                Assert.Equal(new[] { 7f, 8f, 9f }, v3);
                cache.Add([(Key(4), new[] { 0.5f, -1f, 2f })]);
            }
            using (var cache = EmbeddingCache.Open(dir, "model-a|prep"))
            {
                Assert.Equal(4, cache.Count);
                Assert.Equal(0, cache.RecoveredBytes);
            }
            using (var other = EmbeddingCache.Open(dir, "model-b|prep")) Assert.Equal(0, other.Count);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ScorerAveragesPairsPerImageSubjectAndPrompt()
    {
        float[] V(params float[] x) => x;
        // Orthonormal real embeddings make the cosines easy to state.
        var real = new[] { V(1, 0, 0), V(0, 1, 0) };
        var gen = new List<GeneratedEmbeddings>
        {
            new("g1", "a sks dog", "p0", "a dog", V(2, 0, 0), V(0, 3, 0), V(0, 1, 0)),      // dino (1+0)/2, clip-i (0+1)/2, clip-t 1
            new("g2", "a sks dog", "p0", "a dog", V(1, 1, 0), V(0, 0, 1), V(1, 0, 0)),      // dino (s+s)/2, clip-i 0, clip-t 0
            new("g3", "a red sks dog", "p1", "a red dog", V(0, 0, 5), V(-1, 0, 0), V(1, 0, 0)), // dino 0, clip-i -1/2, clip-t -1
        };
        var s = FidelityScorer.Score([new SubjectEmbeddings("dog", ["r1", "r2"], real, real, gen)]);
        double r = Math.Sqrt(0.5);
        Assert.Equal(new[] { 0.5, r, 0 }, s.PerImage.Select(i => Math.Round(i.Dino, 12)).Select(x => x == Math.Round(r, 12) ? r : x));
        Assert.Equal(new[] { 0.5, 0, -0.5 }, s.PerImage.Select(i => i.ClipI));
        Assert.Equal(new[] { 1.0, 0, -1 }, s.PerImage.Select(i => i.ClipT));
        Assert.Equal((0.5 + r) / 3, s.Overall.Dino.Mean, 12);
        Assert.Equal(3, s.Overall.Dino.Count);
        Assert.Equal(Math.Sqrt(2.0 / 3), s.Overall.ClipT.Std, 12);
        var p0 = s.PerPrompt.Single(p => p.Name == "p0");
        Assert.Equal(0.5, p0.ClipT.Mean, 12);
        Assert.Equal(2, p0.ClipT.Count);
        Assert.Equal(s.Overall.Dino.Mean, s.PerSubject.Single().Dino.Mean, 12);
    }
}
