using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Loading;

/// <summary>
/// The models' own FromPretrained(folder) choose weights like <see cref="DiffusersModelFolder"/> does
/// (<see cref="ComponentWeights"/>): shards, variants with fallback to the main file, pickle refused.
/// Folders are copies of the golden pipeline's components, rewritten by the tests.
/// </summary>
[Trait("Category", "Golden")]
public sealed class FromPretrainedWeightsTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static TheoryData<string> Cases => GoldenData.CasesOfKind("diffusers_folder");

    private static string GoldenComponent(string caseName, string component) =>
        Path.Combine(DiffusersModelFolderTests.FolderOf(caseName), component);

    /// <summary>The component's main weights file as the case's manifest lists it.</summary>
    private static string MainWeights(string caseName, string component)
    {
        var golden = GoldenFolderCase.Load(caseName);
        return golden.PathOf(golden.MainWeightsFile(component));
    }

    /// <summary>The component's config.json alone in a fresh folder; the test writes the weights.</summary>
    private string ConfigOnlyCopy(string caseName, string component)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_tmp.Path, component)).FullName;
        File.Copy(Path.Combine(GoldenComponent(caseName, component), "config.json"), Path.Combine(dir, "config.json"));
        return dir;
    }

    private static Dictionary<string, Tensor> ReadAll(string safetensorsPath)
    {
        using var f = SafetensorsFile.Open(safetensorsPath);
        return f.Names.ToDictionary(k => k, k => f.Read(k));
    }

    private static Tensor RoundToHalf(Tensor t) => t.to_type(ScalarType.Float16).to_type(t.dtype);

    /// <summary>A variant that differs from any weights in every nonzero value, and is exact in float16.</summary>
    private static Tensor NegatedHalf(Tensor t) => RoundToHalf(-t);

    /// <summary>The floating-point tensors changed by <paramref name="f"/> and stored as float16, as an fp16 variant file holds them.</summary>
    private static Dictionary<string, Tensor> HalfVariant(Dictionary<string, Tensor> tensors, Func<Tensor, Tensor> f) =>
        tensors.ToDictionary(kv => kv.Key, kv => kv.Value.is_floating_point() ? f(kv.Value).to_type(ScalarType.Float16) : kv.Value);

    /// <summary>
    /// The loaded state equals the reference's, with <paramref name="variant"/> (if given) applied to its floating-point
    /// tensors; that must change some value, or the test could not tell the variant from the main file.
    /// </summary>
    private static void AssertState(nn.Module actual, nn.Module reference, string what, Func<Tensor, Tensor>? variant = null)
    {
        var a = actual.state_dict();
        var e = reference.state_dict();
        Assert.Equal(e.Keys.Order(StringComparer.Ordinal), a.Keys.Order(StringComparer.Ordinal));
        if (variant is not null)
            Assert.True(e.Values.Any(t => t.is_floating_point() && TensorAssert.MaxAbsDiff(variant(t), t) > 0), $"{what}: the variant equals the main weights");
        foreach (var (k, t) in e)
            TensorAssert.Equal(a[k], variant is not null && t.is_floating_point() ? variant(t) : t, $"{what}: {k}");
    }

    [Theory, MemberData(nameof(Cases))]
    public void UNetFromPretrainedReadsShardedMainAndVariantWeights(string caseName)
    {
        using var scope = NewDisposeScope();
        var golden = GoldenComponent(caseName, "unet");
        var dir = ConfigOnlyCopy(caseName, "unet");
        var main = MainWeights(caseName, "unet");
        var stem = Path.GetFileNameWithoutExtension(main);
        var tensors = ReadAll(main);
        ShardedSafetensorsTests.WriteShards(dir, stem, tensors, 3);
        // diffusers names a sharded variant's index <stem>.safetensors.index.fp16.json.
        File.Move(ShardedSafetensorsTests.WriteShards(dir, $"{stem}.fp16", HalfVariant(tensors, NegatedHalf), 2),
            Path.Combine(dir, $"{stem}.safetensors.index.fp16.json"));

        var reference = UNet2DConditionModel.FromPretrained(golden);
        var sharded = UNet2DConditionModel.FromPretrained(dir);
        AssertState(sharded, reference, "sharded main weights");
        var half = UNet2DConditionModel.FromPretrained(dir, variant: "fp16");
        AssertState(half, reference, "sharded fp16 variant", NegatedHalf);
    }

    [Theory, MemberData(nameof(Cases))]
    public void ClipTextModelFromPretrainedReadsAVariantAndFallsBackToTheMainFile(string caseName)
    {
        using var scope = NewDisposeScope();
        var golden = GoldenComponent(caseName, "text_encoder");
        var dir = ConfigOnlyCopy(caseName, "text_encoder");
        var mainFile = MainWeights(caseName, "text_encoder");
        var stem = Path.GetFileNameWithoutExtension(mainFile);
        var tensors = ReadAll(mainFile);
        SafetensorsWriter.Write(Path.Combine(dir, Path.GetFileName(mainFile)), tensors);
        // The variant holds the weights negated and rounded to float16, so that it is told apart from the main file.
        SafetensorsWriter.Write(Path.Combine(dir, $"{stem}.fp16.safetensors"), HalfVariant(tensors, NegatedHalf));

        using var full = CLIPTextModel.FromPretrained(golden);
        using var main = CLIPTextModel.FromPretrained(dir);
        AssertState(main, full, "main weights");
        using var half = CLIPTextModel.FromPretrained(dir, variant: "fp16");
        AssertState(half, full, "fp16 variant", NegatedHalf);
        // Like diffusers, a variant the folder does not have falls back to the main weights.
        using var fallback = CLIPTextModel.FromPretrained(dir, variant: "bf16");
        AssertState(fallback, full, "missing bf16 variant");
    }

    [Theory, MemberData(nameof(Cases))]
    public void FromPretrainedRefusesPickleAndNamesTheFolderOfMissingWeights(string caseName)
    {
        var vae = ConfigOnlyCopy(caseName, "vae");
        var bin = Path.Combine(vae, Path.ChangeExtension(Path.GetFileName(MainWeights(caseName, "vae")), ".bin"));
        File.WriteAllText(bin, "not read");
        var pickle = Assert.Throws<InvalidDataException>(() => AutoencoderKL.FromPretrained(vae));
        Assert.IsType<PickleCheckpointException>(pickle.InnerException);
        Assert.Contains(bin, pickle.Message);
        Assert.Contains("save_pretrained", pickle.Message);

        var text = ConfigOnlyCopy(caseName, "text_encoder");
        File.WriteAllText(Path.Combine(text, "pytorch_model.bin"), "not read"); // transformers' pickle name
        Assert.Contains(Path.Combine(text, "pytorch_model.bin"),
            Assert.Throws<InvalidDataException>(() => CLIPTextModel.FromPretrained(text)).Message);

        var unet = ConfigOnlyCopy(caseName, "unet");
        var unetStem = Path.GetFileNameWithoutExtension(MainWeights(caseName, "unet"));
        var missing = Assert.Throws<FileNotFoundException>(() => UNet2DConditionModel.FromPretrained(unet, variant: "fp16"));
        Assert.Contains(unet, missing.Message);
        Assert.Contains($"{unetStem}.fp16.safetensors", missing.Message);
        Assert.Contains($"{unetStem}.safetensors.index.json", missing.Message);
        Assert.Throws<ArgumentException>(() => UNet2DConditionModel.FromPretrained(unet, variant: "../fp16"));
    }
}
