using DiffusionPeft.Adapters;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.Subjects;
using DiffusionPeft.Core.IO;
using DiffusionPeft.DreamBooth.Training;

namespace DiffusionPeft.Tests.DreamBooth;

public sealed class SubjectsManifestTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-subj-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static readonly TrainConfig Base = new()
    {
        Model = "m", Images = "", Prompt = "", Out = "/runs/batch", ClassPrompt = "a photo of a {class}", ClassImages = "/data/classes",
        ValidationPrompts = new EquatableList<string>(["{identifier} {class} on the moon"]),
    };

    [Fact]
    public void CsvSubjectsBecomeOneRunEachAndShardsSplitThem()
    {
        var path = Path.Combine(_dir, "subjects.csv");
        File.WriteAllText(path, "# my subjects\nfolder,identifier,class\nimgs/rex,sks,dog\nimgs/tom,zwx,cat\n\"imgs/odd, name\",ohwx,\"teddy bear\"\n");
        var subjects = SubjectsManifest.Read(path);
        Assert.Equal(3, subjects.Count);
        Assert.Equal(new Subject("odd,_name", Path.Combine(_dir, "imgs", "odd, name"), "ohwx", "teddy bear"), subjects[2]);

        var all = SubjectsManifest.Plan(Base, subjects, Shard.All);
        Assert.Equal(3, all.Count);
        var rex = all[0].Config;
        Assert.Equal(Path.Combine(_dir, "imgs", "rex"), rex.Images);
        Assert.Equal("a photo of sks dog", rex.Prompt);
        Assert.Equal(Path.Combine("/runs/batch", "rex"), rex.Out);
        Assert.Equal("a photo of a dog", rex.ClassPrompt);
        Assert.Equal(Path.Combine("/data/classes", "dog"), rex.ClassImages);
        Assert.Equal("sks dog on the moon", rex.ValidationPrompts[0]);
        Assert.Equal(Path.Combine("/data/classes", "teddy_bear"), all[2].Config.ClassImages);

        var second = SubjectsManifest.Plan(Base, subjects, Shard.Parse("2/2"));
        Assert.Equal(new[] { "tom" }, second.Select(s => s.Subject.Name));
        var first = SubjectsManifest.Plan(Base, subjects, Shard.Parse("1/2"));
        Assert.Equal(new[] { "rex", "odd,_name" }, first.Select(s => s.Subject.Name));
    }

    [Fact]
    public void YamlManifestAndErrors()
    {
        var path = Path.Combine(_dir, "subjects.yaml");
        File.WriteAllText(path, "subjects:\n  - {folder: a, identifier: sks, class: dog}\n  - folder: b\n    identifier: zwx\n    class: dog\n    name: second\n");
        var subjects = SubjectsManifest.Read(path);
        Assert.Equal(new[] { "a", "second" }, subjects.Select(s => s.Name));

        File.WriteAllText(path, "- {folder: a, identifier: sks}\n");
        Assert.Contains("missing 'class'", Assert.Throws<InvalidDataException>(() => SubjectsManifest.Read(path)).Message);
        File.WriteAllText(path, "- {folder: a, identifier: sks, class: dog, colour: red}\n");
        Assert.Contains("unknown key 'colour'", Assert.Throws<InvalidDataException>(() => SubjectsManifest.Read(path)).Message);
        var csv = Path.Combine(_dir, "s.csv");
        File.WriteAllText(csv, "folder,class\nx,dog\n");
        Assert.Contains("folder,identifier,class", Assert.Throws<InvalidDataException>(() => SubjectsManifest.Read(csv)).Message);
        File.WriteAllText(csv, "folder,identifier,class\nx,sks,dog\nx,zwx,dog\n");
        Assert.Contains("used twice", Assert.Throws<InvalidDataException>(() => SubjectsManifest.Read(csv)).Message);
    }
}

public sealed class DreamBoothRunTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-run-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void BadFolderFailsBeforeAnythingElse()
    {
        var images = Directory.CreateDirectory(Path.Combine(_dir, "imgs")).FullName;
        File.WriteAllText(Path.Combine(images, "a.png"), "bad");
        var config = new TrainConfig { Model = "m", Images = images, Prompt = "p", Out = Path.Combine(_dir, "run") };
        var run = new DreamBoothRun(config, new FakeDecoder());
        Assert.Throws<NoTrainingImagesException>(run.PrepareData);
        Assert.False(Directory.Exists(config.Out)); // nothing created
    }

    [Fact]
    public void PreparesDataWritesTheResolvedConfigAndTrains()
    {
        var images = Directory.CreateDirectory(Path.Combine(_dir, "imgs")).FullName;
        for (int i = 0; i < ToyRegression.Items; i++) File.WriteAllText(Path.Combine(images, $"{i:D2}.png"), i % 2 == 0 ? "600 400" : "400 600");
        var yaml = Path.Combine(_dir, "run.yaml");
        File.WriteAllText(yaml, $"model: m\nimages: {images}\nprompt: a photo of sks dog\nout: {Path.Combine(_dir, "run")}\nsteps: 50\nbuckets: true\nbatch: 2\nlr: 0.05\n");
        var config = DreamBoothRun.Resolve(yaml, [new("--steps", "6"), new("--checkpoint-every", "3")]);
        var progress = new RecordingProgress();
        var run = new DreamBoothRun(config, new FakeDecoder(), progress);
        var data = run.PrepareData();
        Assert.Equal(16, data.Count);
        Assert.Equal(config with { DType = run.Config.DType }, run.Config);   // --dtype auto is written resolved
        Assert.Equal(run.Config, TrainConfigYaml.Load(Path.Combine(config.Out, TrainConfigYaml.ResolvedFileName)));
        Assert.Equal(new Bucket(640, 384), run.TargetSizes[0]);
        Assert.Equal(new Bucket(384, 640), run.TargetSizes[1]);

        using var toy = new ToyRegression(config.Lr);
        var result = run.TrainWith(toy, toy);
        Assert.Equal(6, result.Steps);
        Assert.Equal(run.RunDirectory, toy.FinalWrittenTo);
        Assert.True(File.Exists(Path.Combine(config.Out, "adapter.safetensors")));
        Assert.Equal(6, File.ReadAllLines(Path.Combine(config.Out, TrainingLog.FileName)).Length);
        Assert.Equal(2, Directory.EnumerateDirectories(Path.Combine(config.Out, "checkpoints")).Count());
    }
}

/// <summary>Writes "64 64" files (decodable by <see cref="FakeDecoder"/>) and records seeds; can stop after some batches.</summary>
internal sealed class FakeClassSampler(int? failAfterBatches = null) : IClassImageSampler
{
    public List<ClassImageRequest> Generated { get; } = [];
    public List<int> BatchSizes { get; } = [];

    public void Generate(string prompt, IReadOnlyList<ClassImageRequest> batch, CancellationToken cancellationToken)
    {
        if (failAfterBatches == BatchSizes.Count) throw new OperationCanceledException("killed");
        BatchSizes.Add(batch.Count);
        foreach (var r in batch)
        {
            AtomicFile.WriteAllText(r.Path, "64 64");
            Generated.Add(r);
        }
    }
}

public sealed class ClassImagesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-class-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private TrainConfig Config => new()
    {
        Model = "m", Images = "i", Prompt = "a photo of sks dog", Out = "o", ClassPrompt = "a photo of dog",
        ClassImages = Path.Combine(_dir, "dog"), NumClassImages = 7, Seed = 100,
    };

    [Fact]
    public void GeneratesOnlyTheMissingImagesOnceInSeededBatches()
    {
        Directory.CreateDirectory(Config.ClassImages!);
        File.WriteAllText(Path.Combine(Config.ClassImages!, "mine.jpg"), "32 32");
        File.WriteAllText(Path.Combine(Config.ClassImages!, "class-00001.png"), "64 64");
        File.WriteAllText(Path.Combine(Config.ClassImages!, "class-00002.png"), "bad"); // regenerated
        var sampler = new FakeClassSampler();
        var progress = new RecordingProgress();
        Assert.Equal(5, ClassImages.Generate(Config, new FakeDecoder(), sampler, 2, progress));
        Assert.Equal(new[] { 0, 2, 3, 4, 5 }, sampler.Generated.Select(r => r.Index));
        Assert.Equal(new long[] { 100, 102, 103, 104, 105 }, sampler.Generated.Select(r => r.Seed));
        Assert.Equal(new[] { 2, 2, 1 }, sampler.BatchSizes);
        Assert.Contains("class images 5/5", progress.Infos);
        Assert.Single(progress.Warnings, w => w.Contains("class-00002.png"));

        var again = new FakeClassSampler();
        Assert.Equal(0, ClassImages.Generate(Config, new FakeDecoder(), again, 2));
        Assert.Empty(again.Generated);
    }

    [Fact]
    public void AnInterruptedGenerationResumesWithTheSameFilesAndSeeds()
    {
        var uninterrupted = new FakeClassSampler();
        ClassImages.Generate(Config with { ClassImages = Path.Combine(_dir, "ref") }, new FakeDecoder(), uninterrupted, 3);

        var killed = new FakeClassSampler(failAfterBatches: 1);
        Assert.Throws<OperationCanceledException>(() => ClassImages.Generate(Config, new FakeDecoder(), killed, 3));
        Assert.Equal(3, killed.Generated.Count);
        var resumed = new FakeClassSampler();
        ClassImages.Generate(Config, new FakeDecoder(), resumed, 3);
        Assert.Equal(uninterrupted.Generated.Select(r => (r.Index, r.Seed, Path.GetFileName(r.Path))),
                     killed.Generated.Concat(resumed.Generated).Select(r => (r.Index, r.Seed, Path.GetFileName(r.Path))));
    }
}

public sealed class SubjectRunResolutionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-subjrun-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void SharedConfigAndFlagsApplyToEverySubjectOfTheShard()
    {
        var manifest = Path.Combine(_dir, "subjects.csv");
        File.WriteAllText(manifest, "folder,identifier,class\nrex,sks,dog\ntom,zwx,cat\nbo,ohwx,dog\n");
        var yaml = Path.Combine(_dir, "shared.yaml");
        File.WriteAllText(yaml, "model: sd15\nout: runs\nsteps: 400\n");
        var runs = DreamBoothRun.ResolveSubjects(yaml, [new("--steps", "300"), new("--method", "dora")], manifest, Shard.Parse("1/2"));
        Assert.Equal(new[] { "rex", "bo" }, runs.Select(r => r.Subject.Name));
        Assert.All(runs, r => Assert.Equal((300, AdapterMethod.Dora, "sd15"), (r.Config.Steps, r.Config.Method, r.Config.Model)));
        Assert.Equal("a photo of ohwx dog", runs[1].Config.Prompt);
        Assert.Equal(Path.Combine("runs", "bo"), runs[1].Config.Out);

        var ex = Assert.Throws<TrainConfigException>(() => DreamBoothRun.ResolveSubjects(yaml, [new("--rank", "0")], manifest, Shard.All));
        Assert.Contains("subject rex", ex.Message);
    }
}
