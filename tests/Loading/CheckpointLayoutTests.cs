using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Loading;

[Trait("Category", "Golden")]
public sealed class CheckpointLayoutTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static TheoryData<string> FolderCases => GoldenData.CasesOfKind("diffusers_folder");
    public static TheoryData<string> SingleFileCases => GoldenData.CasesOfKind("single_file");

    /// <summary>A folder's family is told by its text encoder's activation: quick_gelu (CLIP ViT-L, SD 1.x) or gelu (OpenCLIP, SD 2.x).</summary>
    [Theory, MemberData(nameof(FolderCases))]
    public void DiffusersFolder(string caseName)
    {
        var dir = Path.GetFullPath(DiffusersModelFolderTests.FolderOf(caseName));
        var family = ConfigJson.Load(Path.Combine(dir, "text_encoder", "config.json")).String("hidden_act", "") switch
        {
            "quick_gelu" => ModelFamily.SD1,
            "gelu" => ModelFamily.SD2,
            _ => ModelFamily.Unknown,
        };
        Assert.Equal(new CheckpointLayoutInfo(CheckpointFormat.DiffusersFolder, dir, family), CheckpointLayout.Detect(dir));
        Assert.Equal(dir, CheckpointLayout.Detect(Path.Combine(dir, "model_index.json")).Path);
        var parent = Path.GetDirectoryName(dir)!;
        var ex = Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(parent));
        Assert.Contains(dir, ex.Message);
    }

    [Theory, MemberData(nameof(SingleFileCases))]
    public void SingleFile(string caseName)
    {
        var file = Path.GetFullPath(GoldenData.FileOf(caseName, "checkpoint"));
        var detected = CheckpointLayout.Detect(file);
        Assert.Equal((CheckpointFormat.SingleFile, file), (detected.Format, detected.Path));
        if (GoldenSingleFileCase.Family(caseName) is { } family) Assert.Equal(family, detected.Family);
        else output.WriteLine($"skipped the family check: {caseName} names no original config or key prefixes");
        var ex = Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(Path.GetDirectoryName(file)!));
        Assert.Contains("pass the file itself", ex.Message);
    }

    public static TheoryData<string> LoraCases => GoldenData.CasesOfKind("lora");

    [Theory, MemberData(nameof(LoraCases))]
    public void LoraFilesAreRefusedAsCheckpoints(string caseName)
    {
        var lora = GoldenData.FileOf(caseName, "lora");
        Assert.Contains("LoRA adapter", Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(lora)).Message);
    }

    /// <summary>Every single-component weights file (UNet, VAE, text encoder cases).</summary>
    public static TheoryData<string> ComponentCases
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var kind in new[] { "unet", "vae", "clip_text" })
                foreach (var c in GoldenData.CaseNames(kind)) data.Add(c);
            return data;
        }
    }

    [Theory, MemberData(nameof(ComponentCases))]
    public void ComponentWeightsAreRefusedAsCheckpoints(string caseName)
    {
        var weights = GoldenData.FileOf(caseName, "weights");
        Assert.Contains("not a Stable Diffusion checkpoint", Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(weights)).Message);
    }

    [Fact]
    public void PickleFilesAreRefused()
    {
        foreach (var name in new[] { "model.bin", "model.ckpt", "model.pt", "model.pth" })
        {
            var p = _tmp.File(name);
            File.WriteAllText(p, "whatever");
            var ex = Assert.Throws<PickleCheckpointException>(() => CheckpointLayout.Detect(p));
            Assert.Contains(p, ex.Message);
        }
        var zip = _tmp.File("renamed.weights");
        File.WriteAllBytes(zip, [(byte)'P', (byte)'K', 3, 4, 0, 0, 0, 0, 0, 0]);
        Assert.Throws<PickleCheckpointException>(() => CheckpointLayout.Detect(zip));
        var dir = Directory.CreateDirectory(_tmp.File("picklefolder")).FullName;
        File.WriteAllText(Path.Combine(dir, "pytorch_model.bin"), "x");
        Assert.Throws<PickleCheckpointException>(() => CheckpointLayout.Detect(dir));
    }

    [Fact]
    public void OtherThingsAreRefusedClearly()
    {
        var empty = Directory.CreateDirectory(_tmp.File("empty")).FullName;
        Assert.Contains("empty", Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(empty)).Message);

        var text = _tmp.File("notes.txt");
        File.WriteAllText(text, "hello, not a checkpoint");
        var ex = Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(text));
        Assert.Contains(text, ex.Message);
        Assert.Contains("unknown checkpoint format", ex.Message);

        var broken = _tmp.File("broken.safetensors");
        File.WriteAllText(broken, "garbage!");
        Assert.Throws<DiffusionPeft.Diffusion.IO.InvalidSafetensorsException>(() => CheckpointLayout.Detect(broken));

        var missing = _tmp.File("missing.safetensors");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => CheckpointLayout.Detect(missing)).Message);
    }
}
