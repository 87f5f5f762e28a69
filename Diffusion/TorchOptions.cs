using DiffusionPeft.Diffusion.Platform;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion;

/// <summary>Parses the `--device` and `--dtype` values every command takes, and resolves `--dtype auto`.</summary>
public static class TorchOptions
{
    public const string AutoDType = "auto";

    /// <param name="requireAvailable">Also check that the device exists here (configs are validated without it).</param>
    public static Device ParseDevice(string text, bool requireAvailable = true)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return CPU;
        bool isCuda = t == "cuda" || (t.StartsWith("cuda:", StringComparison.Ordinal) && t.Length > 5 && t[5..].All(char.IsAsciiDigit));
        if (!isCuda) throw new ArgumentException($"--device '{text}': expected cpu, cuda or cuda:N.");
        if (requireAvailable && !cuda.is_available())
            throw new NotSupportedException($"--device {text}: CUDA is not available to this process (build with -p:TorchBackend=cuda, or point DPEFT_LIBTORCH at a CUDA PyTorch's torch/lib; `dpeft doctor` shows what was loaded).");
        return new Device(t);
    }

    public static bool IsAuto(string text) => text.Trim().Equals(AutoDType, StringComparison.OrdinalIgnoreCase);

    /// <summary>An explicit dtype name. `auto` depends on the device: see <see cref="ResolveDType"/>.</summary>
    public static ScalarType ParseDType(string text) => text.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" or "float" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "fp16" or "float16" or "half" => ScalarType.Float16,
        AutoDType => throw new ArgumentException("--dtype auto is resolved for a device (TorchOptions.ResolveDType), not parsed."),
        _ => throw new ArgumentException($"--dtype '{text}': expected fp32 or bf16, or auto (bf16 on a GPU or a CPU with bf16 instructions, else fp32); fp16 is accepted but unusably slow on CPU."),
    };

    /// <summary>Checks a --dtype value where the device is not known yet (config validation): auto or an explicit name.</summary>
    public static void CheckDType(string text)
    {
        if (!IsAuto(text)) ParseDType(text);
    }

    /// <summary>
    /// `auto`: bf16 on a CUDA device of compute capability 8.0 or later and on a CPU with AVX512-BF16 or AMX, fp32
    /// elsewhere. An explicit bf16 on a CPU without those instructions (or fp16 on any CPU) is kept, with a warning that
    /// says how slow it measured here.
    /// </summary>
    public static ScalarType ResolveDType(string text, Device device, Action<string>? warn = null)
    {
        if (IsAuto(text)) return PreferredDType(device);
        var dtype = ParseDType(text);
        if (warn is not null && device.type == DeviceType.CPU)
        {
            if (dtype == ScalarType.BFloat16 && !CpuFeatures.Current.FastBf16) warn(SlowBf16Warning(MatmulProbe.MeasureCpu()));
            else if (dtype == ScalarType.Float16) warn("--dtype fp16 on a CPU: fp16 has no fast CPU kernels (a 2048² matmul took 66 s); use --dtype auto or fp32.");
        }
        return dtype;
    }

    /// <summary>What `auto` means for <paramref name="device"/> on this machine.</summary>
    public static ScalarType PreferredDType(Device device) => device.type switch
    {
        DeviceType.CPU => CpuFeatures.Current.FastBf16 ? ScalarType.BFloat16 : ScalarType.Float32,
        // Turing and Volta emulate bf16: fp32 there. An unreadable driver leaves bf16 (every GPU since Ampere has it).
        DeviceType.CUDA => CudaDriver.Device(Math.Max(device.index, 0)) is { } gpu && !gpu.Bf16 ? ScalarType.Float32 : ScalarType.BFloat16,
        _ => ScalarType.Float32,
    };

    public static string SlowBf16Warning(MatmulRates measured)
    {
        var cpu = CpuFeatures.Current;
        var flags = cpu.Flags.Any() ? string.Join(", ", cpu.Flags) : "none of avx2, avx512f";
        var ratio = measured.Bf16Speedup < 1 ? $"{1 / measured.Bf16Speedup:F0}x slower" : $"{measured.Bf16Speedup:F1}x faster";
        return $"--dtype bf16 on a CPU without AVX512-BF16 or AMX ({flags}): measured here, {measured} ({ratio}). " +
               "Use --dtype auto (fp32 on this CPU) unless you need bf16's numbers.";
    }

    public static string Name(ScalarType t) => t switch
    {
        ScalarType.Float32 => "fp32",
        ScalarType.BFloat16 => "bf16",
        ScalarType.Float16 => "fp16",
        ScalarType.Float64 => "fp64",
        _ => t.ToString(),
    };
}
