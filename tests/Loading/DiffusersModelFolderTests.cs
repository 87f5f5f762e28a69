using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Loading;

[Trait("Category", "Golden")]
public sealed class DiffusersModelFolderTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static TheoryData<string> Cases => GoldenData.CasesOfKind("diffusers_folder");

    internal static string FolderOf(string caseName) => Path.GetDirectoryName(GoldenData.FileOf(caseName, "model/model_index.json"))!;

    /// <summary>The manifest's record of one weight file: tensor name → (dtype, shape).</summary>
    private static Dictionary<string, (string DType, long[] Shape)> ManifestWeights(string caseName, string relativeFile)
    {
        var node = GoldenData.Case(caseName)["weights"]![relativeFile]!["tensors"]!;
        if (node is JsonValue v)
        {
            // A variant is described by reference: "same names and shapes as <file>, dtype F16 (...)".
            var m = System.Text.RegularExpressions.Regex.Match((string)v!, @"same names and shapes as (\S+), dtype (\w+)");
            Assert.True(m.Success, $"unexpected manifest description of {relativeFile}: {v}");
            return ManifestWeights(caseName, m.Groups[1].Value).ToDictionary(kv => kv.Key, kv => (m.Groups[2].Value, kv.Value.Shape));
        }
        var tensors = (JsonObject)node;
        return tensors.ToDictionary(kv => kv.Key, kv => ((string)kv.Value!["dtype"]!, ((JsonArray)kv.Value!["shape"]!).Select(n => (long)n!).ToArray()));
    }

    private static void AssertMatchesManifest(string caseName, DiffusersModelFolder folder, string component)
    {
        var path = folder.WeightsPath(component);
        var rel = Path.GetRelativePath(folder.Root, path).Replace('\\', '/');
        var expected = ManifestWeights(caseName, rel);
        using var src = folder.OpenWeights(component);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), src.Keys.Order(StringComparer.Ordinal));
        var file = Assert.IsType<SafetensorsFile>(src);
        foreach (var (key, (dtype, shape)) in expected)
        {
            Assert.Equal(shape, src.ShapeOf(key));
            Assert.Equal(dtype, file.Entry(key).DType.ToString());
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void OpensComponentsWithMainWeights(string caseName)
    {
        var folder = DiffusersModelFolder.Open(FolderOf(caseName));
        foreach (var c in new[] { "unet", "vae", "text_encoder", "tokenizer", "scheduler" }) Assert.Contains(c, folder.Components);
        Assert.DoesNotContain("safety_checker", folder.Components);
        Assert.Equal(("diffusers", "UNet2DConditionModel"), folder.ComponentClass("unet"));
        Assert.Equal(Path.Combine(folder.Root, "unet", "diffusion_pytorch_model.safetensors"), folder.WeightsPath("unet"));
        Assert.Equal(Path.Combine(folder.Root, "text_encoder", "model.safetensors"), folder.WeightsPath("text_encoder"));
        Assert.EndsWith(Path.Combine("scheduler", "scheduler_config.json"), folder.ConfigPath("scheduler"));
        Assert.EndsWith(Path.Combine("tokenizer", "tokenizer_config.json"), folder.ConfigPath("tokenizer"));
        Assert.Equal("UNet2DConditionModel", folder.Config("unet").String("_class_name", ""));
        foreach (var c in new[] { "unet", "vae", "text_encoder" }) AssertMatchesManifest(caseName, folder, c);
    }

    [Theory, MemberData(nameof(Cases))]
    public void Fp16VariantIsChosenWhereItExists(string caseName)
    {
        var folder = DiffusersModelFolder.Open(FolderOf(caseName), variant: "fp16");
        Assert.Equal(Path.Combine(folder.Root, "unet", "diffusion_pytorch_model.fp16.safetensors"), folder.WeightsPath("unet"));
        Assert.Equal(Path.Combine(folder.Root, "vae", "diffusion_pytorch_model.safetensors"), folder.WeightsPath("vae"));
        foreach (var c in new[] { "unet", "vae", "text_encoder" }) AssertMatchesManifest(caseName, folder, c);

        // The variant holds the same tensors rounded to float16.
        using var main = DiffusersModelFolder.Open(FolderOf(caseName)).OpenWeights("unet");
        using var half = folder.OpenWeights("unet");
        Assert.Equal(main.Keys.Order(), half.Keys.Order());
        using var scope = NewDisposeScope();
        foreach (var key in main.Keys)
        {
            var a = main.Read(key).to_type(ScalarType.Float16).to_type(ScalarType.Float32);
            var b = half.Read(key, ScalarType.Float32);
            Assert.True(a.equal(b).all().item<bool>(), key);
        }
    }

    private string CopyOfGolden(string caseName)
    {
        var dst = Path.Combine(_tmp.Path, "pipe");
        var src = FolderOf(caseName);
        foreach (var f in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(dst, Path.GetRelativePath(src, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
            File.SetAttributes(to, FileAttributes.Normal);
        }
        return dst;
    }

    [Theory, MemberData(nameof(Cases))]
    public void ShardedComponentIsReadThroughItsIndex(string caseName)
    {
        var root = CopyOfGolden(caseName);
        var unetDir = Path.Combine(root, "unet");
        var single = Path.Combine(unetDir, "diffusion_pytorch_model.safetensors");
        var expected = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();
        using (var f = SafetensorsFile.Open(single))
            foreach (var k in f.Names) expected[k] = f.Read(k);
        ShardedSafetensorsTests.WriteShards(unetDir, "diffusion_pytorch_model", expected, 3);
        File.Delete(single);

        var folder = DiffusersModelFolder.Open(root);
        Assert.EndsWith("diffusion_pytorch_model.safetensors.index.json", folder.WeightsPath("unet"));
        using var src = folder.OpenWeights("unet");
        Assert.IsType<ShardedSafetensors>(src);
        Assert.Equal(expected.Keys.Order(), src.Keys.Order());
        foreach (var (k, t) in expected) Assert.True(src.Read(k).equal(t).all().item<bool>(), k);
    }

    [Theory, MemberData(nameof(Cases))]
    public void PickleWeightsAreRefusedWithConversionAdvice(string caseName)
    {
        var root = CopyOfGolden(caseName);
        File.Delete(Path.Combine(root, "vae", "diffusion_pytorch_model.safetensors"));
        File.WriteAllText(Path.Combine(root, "vae", "diffusion_pytorch_model.bin"), "not read");
        var folder = DiffusersModelFolder.Open(root);
        var ex = Assert.Throws<PickleCheckpointException>(() => folder.OpenWeights("vae"));
        Assert.Contains(Path.Combine(root, "vae", "diffusion_pytorch_model.bin"), ex.Message);
        Assert.Contains("safetensors", ex.Message);
        Assert.Contains("save_pretrained", ex.Message);
        Assert.IsAssignableFrom<NotSupportedException>(ex);
    }

    [Theory, MemberData(nameof(Cases))]
    public void MissingPiecesNameThePath(string caseName)
    {
        var root = CopyOfGolden(caseName);
        Directory.Delete(Path.Combine(root, "text_encoder"), recursive: true);
        File.Delete(Path.Combine(root, "unet", "diffusion_pytorch_model.safetensors"));
        File.Delete(Path.Combine(root, "unet", "diffusion_pytorch_model.fp16.safetensors"));
        var folder = DiffusersModelFolder.Open(root);

        var noDir = Assert.Throws<DirectoryNotFoundException>(() => folder.OpenWeights("text_encoder"));
        Assert.Contains(Path.Combine(root, "text_encoder"), noDir.Message);
        var noWeights = Assert.Throws<FileNotFoundException>(() => folder.OpenWeights("unet"));
        Assert.Contains(Path.Combine(root, "unet"), noWeights.Message);
        Assert.Contains("diffusion_pytorch_model.safetensors", noWeights.Message);
        var unknown = Assert.Throws<KeyNotFoundException>(() => folder.OpenWeights("safety_checker"));
        Assert.Contains("safety_checker", unknown.Message);

        var missing = Path.Combine(_tmp.Path, "nowhere");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => DiffusersModelFolder.Open(missing)).Message);
        var parent = Assert.Throws<FileNotFoundException>(() => DiffusersModelFolder.Open(_tmp.Path));
        Assert.Contains("model_index.json", parent.Message);
        Assert.Contains("'pipe'", parent.Message);
        Assert.Throws<ArgumentException>(() => DiffusersModelFolder.Open(root, variant: "../x"));
    }
}
