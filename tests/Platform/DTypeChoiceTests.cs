using DiffusionPeft.Diffusion.Loading;
using System.Text.Json;
using DiffusionPeft.Cli;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Platform;
using DiffusionPeft.DreamBooth.Checkpoints;
using DiffusionPeft.DreamBooth.Config;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Platform;

/// <summary>`--dtype auto` and the CPU facts it rests on; `dpeft doctor`.</summary>
public sealed class DTypeChoiceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-dtype-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private const string Epyc = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n\nprocessor\t: 1\nflags\t\t: avx512_bf16\n";
    private const string SapphireRapids = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n";
    private const string IceLake = "model name\t: Intel(R) Xeon(R) Gold 6338\nflags\t\t: avx2 avx512f avx512bw\n";

    [Fact]
    public void Bf16IsFastOnlyWithBf16InstructionsOfTheFirstProcessor()
    {
        var epyc = CpuFeatures.Parse(Epyc, 2);
        Assert.Equal(("AMD EPYC 7B13", true, false, false), (epyc.Model, epyc.Avx2, epyc.Avx512F, epyc.FastBf16));
        Assert.True(CpuFeatures.Parse(SapphireRapids, 8) is { FastBf16: true, AmxBf16: true, Avx512Bf16: true });
        Assert.False(CpuFeatures.Parse(IceLake, 8).FastBf16);   // AVX-512 without BF16: emulated
    }

    [Fact]
    public void AutoPicksBf16OnlyWhereItIsFastAndAnExplicitSlowBf16Warns()
    {
        var expected = CpuFeatures.Current.FastBf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        Assert.Equal(expected, TorchOptions.ResolveDType("auto", CPU));
        Assert.Equal(expected, TorchOptions.ResolveDType(" AUTO ", CPU));
        var warnings = new List<string>();
        Assert.Equal(ScalarType.BFloat16, TorchOptions.ResolveDType("bf16", CPU, warnings.Add));
        Assert.Equal(ScalarType.Float32, TorchOptions.ResolveDType("fp32", CPU, warnings.Add));
        if (CpuFeatures.Current.FastBf16) Assert.Empty(warnings);
        else Assert.Matches(@"^--dtype bf16 on a CPU without AVX512-BF16 or AMX .*measured here, bf16 matmul [\d.]+ GFLOP/s, fp32 [\d.]+ GFLOP/s", Assert.Single(warnings));
        Assert.Contains("expected fp32 or bf16, or auto", Assert.Throws<ArgumentException>(() => TorchOptions.ParseDType("fp8")).Message);
        TorchOptions.CheckDType("auto");
    }

    [Fact]
    public void ARunRecordsTheDTypeAutoChoseAndAResumeKeepsTheCheckpointsWhateverThisMachinePrefers()
    {
        var config = new TrainConfig { Model = EmbeddedDefaultModel.UntrainedKeyword, Images = _dir, Prompt = "p", Out = Path.Combine(_dir, "run") };
        Assert.Equal("auto", config.DType);
        Assert.Equal(TorchOptions.Name(TorchOptions.PreferredDType(CPU)), TrainDType.Resolve(config).DType);
        Assert.Equal("bf16", TrainDType.Resolve(config with { DType = "bf16" }).DType);

        // A checkpoint written by a bf16 run (say on a GPU): --resume with auto trains on in bf16.
        var checkpoint = Directory.CreateDirectory(Path.Combine(_dir, "run", "checkpoints", CheckpointStore.FolderName(4))).FullName;
        TrainConfigYaml.Save(config with { DType = "bf16" }, Path.Combine(checkpoint, TrainConfigYaml.ResolvedFileName));
        File.WriteAllText(Path.Combine(checkpoint, CheckpointStore.CompleteMarker), "{}");
        Assert.Equal("bf16", TrainDType.Resolve(config with { Resume = "latest" }).DType);
        Assert.Equal("fp32", TrainDType.Resolve(config with { Resume = "latest", DType = "fp32" }).DType);   // explicit: the trainer compares
    }

    [Fact]
    public void DoctorDescribesTorchCudaCpuAndOnnxRuntime()
    {
        var o = new StringWriter(); var e = new StringWriter();
        Assert.True(Program.Run(["doctor", "--json", "--no-measure"], o, e) == 0, e.ToString());
        using var doc = JsonDocument.Parse(o.ToString());
        var root = doc.RootElement;
        Assert.Contains("(bundled)", root.GetProperty("torch").GetProperty("libtorch").GetString());
        Assert.Matches("^(yes|no)", root.GetProperty("cuda").GetProperty("available").GetString());
        Assert.Contains("avx2 ", root.GetProperty("cpu").GetProperty("features").GetString());
        Assert.Equal(TorchOptions.Name(TorchOptions.PreferredDType(CPU)), root.GetProperty("dtype auto").GetProperty("cpu").GetString());
        Assert.Contains("CPUExecutionProvider", root.GetProperty("onnxruntime").GetProperty("providers").GetString());
    }
}
