using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Cli;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Tests.DreamBooth;

namespace DiffusionPeft.Tests.Cli;

/// <summary>`dpeft train` end to end on the embedded default model at 64 px.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-traincli-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static (int Code, string Out, string Err) Dpeft(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>A tiny run's flags; <paramref name="overrides"/> replace or add flags (each flag appears once).</summary>
    private string[] Common(string run, int steps, string method = "lora", params (string Flag, string Value)[] overrides)
    {
        var flags = new List<(string Flag, string Value)>
        {
            ("--images", AdapterSessionTests.SubjectImages(_dir)), ("--prompt", "a photo of sks ball"), ("--out", Path.Combine(_dir, run)),
            ("--method", method), ("--rank", "2"), ("--alpha", "4"), ("--steps", steps.ToString()), ("--lr", "5e-3"), ("--batch", "1"),
            ("--resolution", "64"), ("--seed", "7"), ("--checkpoint-every", "2"), ("--keep", "2"), ("--plot-every", "2"),
        };
        foreach (var o in overrides)
        {
            flags.RemoveAll(f => f.Flag == o.Flag);
            flags.Add(o);
        }
        return ["train", .. flags.SelectMany(f => new[] { f.Flag, f.Value }), "--quiet"];
    }

    [Fact]
    public void TrainsWritesEveryFileReproducesFromItsConfigAndResumesToTheSameAdapter()
    {
        var run = Path.Combine(_dir, "run");
        var r = Dpeft(Common("run", 4, "singlora"));
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains(EmbeddedDefaultModel.Name, r.Err);   // the note that names the embedded toy-world model
        foreach (var f in new[] { "adapter.safetensors", "adapter.kohya.safetensors", "config.yaml", "log.jsonl", "loss.png" })
            Assert.True(File.Exists(Path.Combine(run, f)), f);
        Assert.Equal(["step-000002", "step-000004"], Directory.GetDirectories(Path.Combine(run, "checkpoints")).Select(Path.GetFileName).Order());
        Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "log.jsonl")).Length);
        using (var file = SafetensorsFile.Open(Path.Combine(run, "adapter.safetensors")))
        {
            Assert.Equal("SingLora", file.Metadata["method"]);
            Assert.Contains("\"steps\":4", file.Metadata["training"]);
            Assert.Contains(file.Entries.Keys, k => k.StartsWith("unet.") && k.EndsWith(".singlora_A"));
        }

        // The resolved config reproduces the run (only the run folder differs).
        var again = Dpeft("train", "--config", Path.Combine(run, "config.yaml"), "--out", Path.Combine(_dir, "again"), "--quiet");
        Assert.True(again.Code == 0, again.Err);
        TensorAssert.SameSafetensors(Path.Combine(run, "adapter.safetensors"), Path.Combine(_dir, "again", "adapter.safetensors"));
        TensorAssert.SameSafetensors(Path.Combine(run, "adapter.kohya.safetensors"), Path.Combine(_dir, "again", "adapter.kohya.safetensors"));

        // Stopped after 2 steps, then resumed to 4: the same final adapter (SingLoRA's ramp included).
        var split = Dpeft(Common("split", 2, "singlora"));
        Assert.True(split.Code == 0, split.Err);
        var resumed = Dpeft(Common("split", 4, "singlora", ("--resume", "latest")));
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("resumed from", resumed.Err);
        TensorAssert.SameSafetensors(Path.Combine(run, "adapter.safetensors"), Path.Combine(_dir, "split", "adapter.safetensors"));

        // Resuming with different training settings is refused, naming them.
        var splitConfig = File.ReadAllText(Path.Combine(_dir, "split", "config.yaml"));
        var changed = Dpeft(Common("split", 6, "singlora", ("--resume", "latest"), ("--lr", "1e-3")));
        Assert.Equal(2, changed.Code);
        Assert.Contains("different training settings (lr)", changed.Err);
        Assert.Equal(splitConfig, File.ReadAllText(Path.Combine(_dir, "split", "config.yaml")));   // refused before the run's config is rewritten
    }

    [Fact]
    public void TheEmbeddedToyModelTakesTheTablesDefaultsWhereNeitherFileNorFlagsSayOtherwise()
    {
        static DiffusionPeft.DreamBooth.Config.TrainConfig Resolve(string? config, params (string Key, string Value)[] flags) =>
            Assert.Single(DiffusionPeft.Cli.Commands.TrainRunner.ResolveConfigs(new DiffusionPeft.Cli.Commands.TrainJob(
                config, [new("images", "x"), new("prompt", "a sks star"), new("out", "o"), .. flags.Select(f => new KeyValuePair<string, string>(f.Key, f.Value))],
                null, Core.IO.Shard.All, true)));

        var toy = Resolve(null);
        Assert.Equal((EmbeddedDefaultModel.Keyword, 64, 3e-3, 300, 2), (toy.Model, toy.Resolution, toy.Lr, toy.Steps, toy.Batch));
        var flagged = Resolve(null, ("lr", "1e-4"), ("steps", "50"));
        Assert.Equal((64, 1e-4, 50), (flagged.Resolution, flagged.Lr, flagged.Steps));

        var file = Path.Combine(_dir, "partial.yaml");
        File.WriteAllText(file, "lr: 0.0005\n");
        var fromFile = Resolve(file);
        Assert.Equal((0.0005, 300, 64), (fromFile.Lr, fromFile.Steps, fromFile.Resolution));

        var checkpoint = Path.Combine(_dir, "sd15");   // any other model keeps the diffusers-style defaults
        var other = Resolve(null, ("model", checkpoint));
        Assert.Equal((512, 1e-4, 500, 1), (other.Resolution, other.Lr, other.Steps, other.Batch));
        var otherFromFile = Path.Combine(_dir, "other.yaml");
        File.WriteAllText(otherFromFile, $"model: {checkpoint}\n");
        Assert.Equal(1e-4, Resolve(otherFromFile).Lr);
    }

    [Fact]
    public void PriorPreservationGeneratesClassImagesOnceAndSubjectsShardsGetTheirOwnRunFolders()
    {
        var classes = Path.Combine(_dir, "class");
        string[] prior = ["--class-prompt", "a photo of a ball", "--class-images", classes, "--num-class-images", "2", "--prior-weight", "0.5"];
        var first = Dpeft([.. Common("prior1", 1), .. prior]);
        Assert.True(first.Code == 0, first.Err);
        Assert.Contains("generating 2 class images", first.Err);
        var images = Directory.GetFiles(classes, "*.png").Order().ToArray();
        Assert.Equal(2, images.Length);
        var stamps = images.Select(File.GetLastWriteTimeUtc).ToArray();
        var second = Dpeft([.. Common("prior2", 1), .. prior]);
        Assert.True(second.Code == 0, second.Err);
        Assert.DoesNotContain("generating", second.Err);
        Assert.Equal(stamps, images.Select(File.GetLastWriteTimeUtc));

        // Two subjects, shard 2/2: only the second subject is trained, in its own folder.
        var manifest = Path.Combine(_dir, "subjects.csv");
        File.WriteAllLines(manifest, ["folder,identifier,class,name", $"{AdapterSessionTests.SubjectImages(_dir)},sks,ball,first", $"{AdapterSessionTests.SubjectImages(_dir)},xyz,ball,second"]);
        var many = Path.Combine(_dir, "many");
        var sharded = Dpeft("train", "--subjects", manifest, "--shard", "2/2", "--out", many, "--steps", "1", "--resolution", "64", "--rank", "2", "--quiet");
        Assert.True(sharded.Code == 0, sharded.Err);
        Assert.Equal(["second"], Directory.GetDirectories(many).Select(Path.GetFileName));
        Assert.Contains("a photo of xyz ball", File.ReadAllText(Path.Combine(many, "second", "config.yaml")));
        Assert.True(File.Exists(Path.Combine(many, "second", "adapter.safetensors")));
    }

    [Fact]
    public void FullModeSaysWhereTheModelFolderIs()
    {
        var run = Path.Combine(_dir, "full");
        var r = Dpeft("train", "--mode", "full", "--model", EmbeddedDefaultModel.UntrainedKeyword, "--images", AdapterSessionTests.SubjectImages(_dir),
            "--prompt", "a photo of sks ball", "--out", run, "--steps", "2", "--batch", "1", "--resolution", "64", "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains($"model written to {Path.Combine(run, "model")}", r.Out);
        Assert.DoesNotContain("adapter written", r.Out);
        Assert.True(File.Exists(Path.Combine(run, "model", "model_index.json")));
    }

    [Fact]
    public void BadFoldersAndNonFiniteLossGiveClearErrors()
    {
        var empty = Directory.CreateDirectory(Path.Combine(_dir, "empty")).FullName;
        var r = Dpeft("train", "--images", empty, "--prompt", "x", "--out", Path.Combine(_dir, "e"), "--quiet");
        Assert.Equal(2, r.Code);
        Assert.Contains($"'{empty}' has no .jpg, .jpeg, .png or .webp files", r.Err);
        Assert.DoesNotContain(EmbeddedDefaultModel.Name, r.Err); // failed before the model loaded

        var broken = Directory.CreateDirectory(Path.Combine(_dir, "broken")).FullName;
        File.WriteAllText(Path.Combine(broken, "a.png"), "not a png");
        File.WriteAllBytes(Path.Combine(broken, "b.jpg"), [0xFF, 0xD8, 0x00]);
        r = Dpeft("train", "--images", broken, "--prompt", "x", "--out", Path.Combine(_dir, "b"), "--quiet");
        Assert.Equal(2, r.Code);
        Assert.Contains("none of its 2 image files decodes (a.png, b.jpg)", r.Err);

        r = Dpeft("train", "--images", Path.Combine(_dir, "missing"), "--prompt", "x", "--out", Path.Combine(_dir, "m"), "--quiet");
        Assert.Equal(2, r.Code);
        Assert.Contains("does not exist", r.Err);

        r = Dpeft("train", "--images", empty, "--prompt", "x", "--out", Path.Combine(_dir, "m"), "--model", Path.Combine(_dir, "nomodel"), "--quiet");
        Assert.Equal(2, r.Code);
        Assert.Contains("no such model folder", r.Err);

        r = Dpeft("train", "--images", empty, "--prompt", "x", "--out", Path.Combine(_dir, "m"), "--method", "lorax", "--quiet");
        Assert.Equal(2, r.Code);
        Assert.Contains("'method' expects one of lora|rslora|dora|loraplus|singlora|sdslora", r.Err);

        // A learning rate that blows the adapter up: the run stops with a clear message and keeps its last good checkpoint.
        var nan = Path.Combine(_dir, "nan");
        r = Dpeft(Common("nan", 20, "lora", ("--lr", "1e30"), ("--checkpoint-every", "1"), ("--max-grad-norm", "0")));
        Assert.Equal(1, r.Code);
        Assert.Contains("not finite", r.Err);
        Assert.Contains("last good checkpoint", r.Err);
        Assert.NotEmpty(Directory.GetDirectories(Path.Combine(nan, "checkpoints"), "step-*"));
        Assert.False(File.Exists(Path.Combine(nan, "adapter.safetensors")));
    }

    public static TheoryData<string> SingleFileCases => DiffusionPeft.Tests.Golden.GoldenData.CasesOfKind("single_file");

    /// <summary>A single-file checkpoint with --configs-from, and --mixed-precision bf16 (frozen base in bf16, fp32 adapters).</summary>
    [Theory, MemberData(nameof(SingleFileCases)), Trait("Category", "Golden")]
    public void TrainsASingleFileCheckpointInMixedPrecision(string caseName)
    {
        var source = DiffusionPeft.Tests.Golden.GoldenFolderCase.Load(DiffusionPeft.Tests.Golden.GoldenSingleFileCase.SourceCase(caseName));
        var r = Dpeft(Common("single", 2, "lora", ("--model", DiffusionPeft.Tests.Golden.GoldenData.FileOf(caseName, "checkpoint")),
            ("--configs-from", source.ModelFolder), ("--mixed-precision", "bf16"), ("--checkpoint-every", "0")));
        Assert.True(r.Code == 0, r.Err);
        // The default targets: to_q, to_k, to_v and to_out.0 of every UNet attention, as many as the base UNet has.
        using var unet = SafetensorsFile.Open(source.PathOf(source.MainWeightsFile("unet")));
        int attentionLinears = unet.Names.Count(k => System.Text.RegularExpressions.Regex.IsMatch(k, @"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)\.weight$"));
        Assert.True(attentionLinears > 0, $"{caseName}: the base UNet has no attention projections");
        using var adapter = SafetensorsFile.Open(Path.Combine(_dir, "single", "adapter.safetensors"));
        Assert.Equal(attentionLinears, adapter.Entries.Count(e => e.Key.EndsWith(".lora_A", StringComparison.Ordinal)));
        Assert.All(adapter.Entries.Values, e => Assert.Equal(SafetensorsDType.F32, e.DType));
        var log = File.ReadAllLines(Path.Combine(_dir, "single", "log.jsonl"));
        Assert.Equal(2, log.Length);
        Assert.All(log, l => Assert.True(double.IsFinite(System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("loss").GetDouble())));
    }
}
