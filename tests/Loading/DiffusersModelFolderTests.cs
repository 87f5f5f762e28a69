using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Loading;

[Trait("Category", "Golden")]
public sealed class DiffusersModelFolderTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static TheoryData<string> Cases => GoldenData.CasesOfKind("diffusers_folder");

    internal static string FolderOf(string caseName) => GoldenFolderCase.Load(caseName).ModelFolder;

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

    /// <summary>The components model_index.json names (null entries are absent), each with its class and main weights as the manifest lists them.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void OpensComponentsWithMainWeights(string caseName)
    {
        var golden = GoldenFolderCase.Load(caseName);
        var folder = DiffusersModelFolder.Open(golden.ModelFolder);
        var index = ConfigJson.Load(Path.Combine(golden.ModelFolder, DiffusersModelFolder.ModelIndexName)).Root;
        foreach (var (name, entry) in index.Where(kv => !kv.Key.StartsWith('_') && kv.Value is JsonArray))
        {
            var pair = (JsonArray)entry!;
            if (pair[0] is null || pair[1] is null) { Assert.DoesNotContain(name, folder.Components); continue; }
            Assert.Contains(name, folder.Components);
            Assert.Equal(((string)pair[0]!, (string)pair[1]!), folder.ComponentClass(name));
        }
        foreach (var c in golden.WeightComponents)
            Assert.Equal(Path.GetFullPath(golden.PathOf(golden.MainWeightsFile(c))), Path.GetFullPath(folder.WeightsPath(c)));
        Assert.EndsWith(Path.Combine("scheduler", "scheduler_config.json"), folder.ConfigPath("scheduler"));
        Assert.EndsWith(Path.Combine("tokenizer", "tokenizer_config.json"), folder.ConfigPath("tokenizer"));
        Assert.Equal(folder.ComponentClass("unet").ClassName, folder.Config("unet").String("_class_name", ""));
        foreach (var c in golden.WeightComponents) AssertMatchesManifest(caseName, folder, c);
    }

    /// <summary>
    /// For every weight variant the case's runs load: the variant file where the manifest lists one, the main file elsewhere;
    /// where the manifest describes a variant as the main weights rounded, it holds exactly those.
    /// </summary>
    [Theory, MemberData(nameof(Cases))]
    public void VariantFilesAreChosenWhereTheyExist(string caseName)
    {
        var golden = GoldenFolderCase.Load(caseName);
        if (golden.Variants.Count == 0) output.WriteLine($"skipped: no run of {caseName} loads a weight variant");
        foreach (var variant in golden.Variants)
        {
            var folder = DiffusersModelFolder.Open(golden.ModelFolder, variant: variant);
            foreach (var c in golden.WeightComponents)
            {
                var expected = golden.WeightsFileFor(c, variant);
                Assert.Equal(Path.GetFullPath(golden.PathOf(expected)), Path.GetFullPath(folder.WeightsPath(c)));
                AssertMatchesManifest(caseName, folder, c);
                if (expected == golden.MainWeightsFile(c)) continue;

                var description = GoldenData.Case(caseName)["weights"]![expected]!["tensors"] as JsonValue;
                if (description is null || !((string)description!).Contains("rounded", StringComparison.Ordinal)) continue;
                using var main = DiffusersModelFolder.Open(golden.ModelFolder).OpenWeights(c);
                using var withVariant = folder.OpenWeights(c);
                using var file = SafetensorsFile.Open(folder.WeightsPath(c));
                Assert.Equal(main.Keys.Order(), withVariant.Keys.Order());
                using var scope = NewDisposeScope();
                foreach (var key in main.Keys)
                {
                    var a = main.Read(key).to_type(file.Entry(key).DType.ToScalarType()).to_type(ScalarType.Float32);
                    var b = withVariant.Read(key, ScalarType.Float32);
                    Assert.True(a.equal(b).all().item<bool>(), $"{c} {key}: the {variant} variant is not the main weights rounded");
                }
            }
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
        var single = Path.Combine(root, GoldenFolderCase.Load(caseName).MainWeightsFile("unet"));
        var expected = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();
        using (var f = SafetensorsFile.Open(single))
            foreach (var k in f.Names) expected[k] = f.Read(k);
        var stem = Path.GetFileNameWithoutExtension(single);
        ShardedSafetensorsTests.WriteShards(unetDir, stem, expected, 3);
        File.Delete(single);

        var folder = DiffusersModelFolder.Open(root);
        Assert.EndsWith($"{stem}.safetensors.index.json", folder.WeightsPath("unet"));
        using var src = folder.OpenWeights("unet");
        Assert.IsType<ShardedSafetensors>(src);
        Assert.Equal(expected.Keys.Order(), src.Keys.Order());
        foreach (var (k, t) in expected) Assert.True(src.Read(k).equal(t).all().item<bool>(), k);
    }

    [Theory, MemberData(nameof(Cases))]
    public void PickleWeightsAreRefusedWithConversionAdvice(string caseName)
    {
        var root = CopyOfGolden(caseName);
        var vaeMain = Path.Combine(root, GoldenFolderCase.Load(caseName).MainWeightsFile("vae"));
        var bin = Path.ChangeExtension(vaeMain, ".bin");
        File.Delete(vaeMain);
        File.WriteAllText(bin, "not read");
        var folder = DiffusersModelFolder.Open(root);
        var ex = Assert.Throws<PickleCheckpointException>(() => folder.OpenWeights("vae"));
        Assert.Contains(bin, ex.Message);
        Assert.Contains("safetensors", ex.Message);
        Assert.Contains("save_pretrained", ex.Message);
        Assert.IsAssignableFrom<NotSupportedException>(ex);
    }

    [Theory, MemberData(nameof(Cases))]
    public void MissingPiecesNameThePath(string caseName)
    {
        var golden = GoldenFolderCase.Load(caseName);
        var root = CopyOfGolden(caseName);
        Directory.Delete(Path.Combine(root, "text_encoder"), recursive: true);
        var unetMain = golden.MainWeightsFile("unet");
        foreach (var f in golden.WeightFiles.Where(f => f.StartsWith("unet/", StringComparison.Ordinal))) File.Delete(Path.Combine(root, f));
        var folder = DiffusersModelFolder.Open(root);

        var noDir = Assert.Throws<DirectoryNotFoundException>(() => folder.OpenWeights("text_encoder"));
        Assert.Contains(Path.Combine(root, "text_encoder"), noDir.Message);
        var noWeights = Assert.Throws<FileNotFoundException>(() => folder.OpenWeights("unet"));
        Assert.Contains(Path.Combine(root, "unet"), noWeights.Message);
        Assert.Contains(Path.GetFileName(unetMain), noWeights.Message);
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
