using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Platform;

/// <summary>One line of a machine description: a section ("torch", "cuda", "cpu"), a key and its value.</summary>
public sealed record EnvironmentFact(string Section, string Key, string Value);

/// <summary>
/// What this process runs on, for `dpeft doctor` and the benchmarks' headers: the libtorch it loaded (where from,
/// which version), CUDA devices with their memory and bf16 support, the TF32 and determinism switches, the CPU's
/// bf16-relevant features (optionally with a measured bf16/fp32 matmul rate) and what `--dtype auto` picks.
/// </summary>
public static class TorchEnvironment
{
    public static IReadOnlyList<EnvironmentFact> Describe(bool measureCpu)
    {
        var facts = new List<EnvironmentFact>();
        void Add(string section, string key, string value) => facts.Add(new(section, key, value));

        bool cudaAvailable = cuda.is_available();   // loads TorchSharp's backend (and libtorch_cuda where there is one)
        Add("torch", "TorchSharp", $"{LibTorchSelection.TorchSharpVersion} (built against libtorch {torch.__version__})");
        var selection = LibTorchSelection.Active;
        Add("torch", "libtorch", selection is null
            ? $"{LibTorchSelection.LoadedPath("libtorch_cpu.so") ?? "?"} (bundled)"
            : $"{LibTorchSelection.LoadedPath("libtorch_cpu.so") ?? selection.Directory} ({LibTorchSelection.Variable}={selection.Source})");
        Add("torch", "libtorch version", selection is null ? $"{torch.__version__} (the package's)" : $"{selection.Version} (from {selection.VersionFile}; supported {LibTorchVersion.SupportedRange})");
        Add("torch", "libtorch_cuda", LibTorchSelection.LoadedPath("libtorch_cuda.so") ?? "not loaded (CPU-only libtorch)");
        Add("torch", "threads", get_num_threads().ToString());

        Add("cuda", "available", cudaAvailable ? $"yes, {cuda.device_count()} device(s), cuDNN {(cuda.is_cudnn_available() ? "yes" : "no")}" : "no");
        Add("cuda", "driver", CudaDriver.DriverVersion is { } dv ? $"CUDA {dv}" : "no NVIDIA driver found (libcuda)");
        foreach (var d in CudaDriver.Devices())
        {
            var used = CudaDriver.MemoryInUse(d.Index);
            Add("cuda", $"cuda:{d.Index}", $"{d.Name}, compute {d.ComputeCapability}, {Gib(d.TotalBytes)} GiB" +
                (used is { } u ? $" ({Gib(u.Used)} GiB in use)" : "") + $", bf16 {(d.Bf16 ? "yes" : "emulated (auto picks fp32)")}");
        }
        Add("cuda", "TF32", $"matmul (cuBLAS) {OnOff(() => backends.cuda.matmul.allow_tf32)}, convolution (cuDNN) {OnOff(() => backends.cudnn.allow_tf32)} (PyTorch's defaults: off, on)");
        Add("cuda", "deterministic", LibTorchContext.Available
            ? $"algorithms {(LibTorchContext.DeterministicAlgorithms ? "on" : "off")}, cuDNN {(LibTorchContext.DeterministicCuDnn ? "on" : "off")}, cuDNN benchmark {(LibTorchContext.BenchmarkCuDnn ? "on" : "off")} (training on CUDA turns them on: {CudaReproducibility.Variable})"
            : "switches not found in this libtorch");

        var cpu = CpuFeatures.Current;
        Add("cpu", "model", $"{cpu.Model}, {cpu.LogicalCores} logical cores");
        Add("cpu", "features", string.Join(" ", new[] { ("avx2", cpu.Avx2), ("avx512f", cpu.Avx512F), ("avx512_bf16", cpu.Avx512Bf16), ("amx_bf16", cpu.AmxBf16), ("amx_tile", cpu.AmxTile) }
            .Select(f => $"{f.Item1} {(f.Item2 ? "yes" : "no")}")));
        Add("cpu", "bf16", cpu.FastBf16 ? "fast (bf16 instructions): --dtype auto picks bf16" : "slow (no AVX512-BF16 or AMX): --dtype auto picks fp32");
        if (measureCpu)
        {
            var rates = MatmulProbe.MeasureCpu();
            Add("cpu", "measured", $"{rates} (256³, best of 3): bf16 {(rates.Bf16Speedup >= 1 ? $"{rates.Bf16Speedup:F1}x faster" : $"{1 / rates.Bf16Speedup:F0}x slower")}");
        }

        Add("dtype auto", "cpu", TorchOptions.Name(TorchOptions.PreferredDType(CPU)));
        if (cudaAvailable)
            for (int i = 0; i < cuda.device_count(); i++)
                Add("dtype auto", $"cuda:{i}", TorchOptions.Name(TorchOptions.PreferredDType(new Device(DeviceType.CUDA, i))));
        return facts;
    }

    private static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);

    private static string OnOff(Func<bool> read)
    {
        try { return read() ? "on" : "off"; }
        catch (Exception e) { return $"unreadable ({e.Message.Split('\n')[0]})"; }
    }
}
