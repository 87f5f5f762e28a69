using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;

namespace DiffusionPeft.Tests.Loading;

[Trait("Category", "Golden")]
public sealed class CheckpointLayoutTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static TheoryData<string> FolderCases => GoldenData.CasesOfKind("diffusers_folder");
    public static TheoryData<string> SingleFileCases => GoldenData.CasesOfKind("single_file");

    [Theory, MemberData(nameof(FolderCases))]
    public void DiffusersFolder(string caseName)
    {
        var dir = DiffusersModelFolderTests.FolderOf(caseName);
        Assert.Equal(new CheckpointLayoutInfo(CheckpointFormat.DiffusersFolder, dir, ModelFamily.SD1), CheckpointLayout.Detect(dir));
        Assert.Equal(dir, CheckpointLayout.Detect(Path.Combine(dir, "model_index.json")).Path);
        var parent = Path.GetDirectoryName(dir)!;
        var ex = Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(parent));
        Assert.Contains(dir, ex.Message);
    }

    [Theory, MemberData(nameof(SingleFileCases))]
    public void SingleFile(string caseName)
    {
        var file = GoldenData.FileOf(caseName, "checkpoint");
        Assert.Equal(new CheckpointLayoutInfo(CheckpointFormat.SingleFile, file, ModelFamily.SD1), CheckpointLayout.Detect(file));
        var ex = Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(Path.GetDirectoryName(file)!));
        Assert.Contains("pass the file itself", ex.Message);
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

        var lora = GoldenData.FileOf("lora_kohya_tiny", "lora");
        Assert.Contains("LoRA adapter", Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(lora)).Message);
        var vaeOnly = GoldenData.FileOf("vae_tiny", "weights");
        Assert.Contains("not a Stable Diffusion checkpoint", Assert.Throws<InvalidDataException>(() => CheckpointLayout.Detect(vaeOnly)).Message);

        var missing = _tmp.File("missing.safetensors");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => CheckpointLayout.Detect(missing)).Message);
    }
}
