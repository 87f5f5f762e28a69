using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Platform;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// The device a benchmark runs on (<c>--device cpu|cuda|cuda:N</c>, <c>--tf32</c> to allow TF32 in fp32 matmuls on
/// CUDA): clocks read after <c>cuda.synchronize()</c>, and peak memory. On the CPU that is the process's VmHWM; on
/// CUDA it is the device memory in use as the driver reports it (this process's context plus everything PyTorch's
/// caching allocator holds, as nvidia-smi shows it), sampled after every timed step: TorchSharp 0.107 binds none of
/// torch.cuda's allocator statistics, and the allocator returns no memory to the driver, so the last sample is the peak.
/// </summary>
public sealed class BenchDevice
{
    private long _peakBytes, _baseBytes;

    private BenchDevice(Device device) => Device = device;

    public static BenchDevice Current { get; private set; } = new(CPU);

    public Device Device { get; }
    public bool IsCuda => Device.type == DeviceType.CUDA;
    public string Name => IsCuda ? (CudaDriver.Device(Math.Max(Device.index, 0))?.Name ?? Device.ToString()) : $"CPU ({CpuFeatures.Current.Model}, {get_num_threads()} threads)";

    /// <summary>Reads --device and --tf32, makes the device current and prints what it is.</summary>
    public static BenchDevice FromArgs(string[] args)
    {
        var device = TorchOptions.ParseDevice(CliArgs.Value(args, "--device", "cpu"));
        var bench = Current = new BenchDevice(device);
        if (bench.IsCuda)
        {
            if (args.Contains("--tf32")) backends.cuda.matmul.allow_tf32 = true;
            Console.WriteLine($"device {device}: {bench.Name}; TF32 matmul {(backends.cuda.matmul.allow_tf32 ? "on" : "off")}, " +
                              $"TF32 cuDNN {(backends.cudnn.allow_tf32 ? "on" : "off")}; libtorch {LibTorchSelection.Active?.Version.Text ?? torch.__version__}");
        }
        return bench;
    }

    /// <summary>Moves a CPU-built tensor or module input here (freeing the CPU copy when it moved).</summary>
    public Tensor Put(Tensor t)
    {
        if (!IsCuda) return t;
        var moved = t.to(Device);
        t.Dispose();
        return moved;
    }

    public void Sync()
    {
        if (IsCuda) cuda.synchronize(Device);
    }

    /// <summary>Starts a new peak: VmHWM reset on the CPU; the device memory now as the base on CUDA.</summary>
    public void ResetPeak()
    {
        if (!IsCuda) { ResetVmHwm(); return; }
        Sync();
        _baseBytes = _peakBytes = UsedBytes();
    }

    /// <summary>Records the device memory in use now (call after each timed step).</summary>
    public void Sample()
    {
        if (IsCuda) _peakBytes = Math.Max(_peakBytes, UsedBytes());
    }

    public double PeakGib => IsCuda ? _peakBytes / (double)(1L << 30) : ProcGib("VmHWM");

    public string Peak() => IsCuda
        ? $"GPU memory in use {Gib(_peakBytes)} GiB at peak ({Gib(_baseBytes)} before the timed steps; driver view: context + PyTorch cache), RSS peak {ProcGib("VmHWM"):F2} GiB"
        : $"peak RSS (VmHWM) {ProcGib("VmHWM"):F2} GiB";

    /// <summary>A note where the dtype cannot run fast on this device (bf16 on a CPU without bf16 instructions), else null.</summary>
    public string? SlowDTypeNote(ScalarType dtype) =>
        !IsCuda && dtype == ScalarType.BFloat16 && !CpuFeatures.Current.FastBf16
            ? $"NOTE: bf16 on a CPU without AVX512-BF16 or AMX runs on reference kernels ({MatmulProbe.MeasureCpu()}): its figures measure emulation, not this code"
            : null;

    private long UsedBytes() => CudaDriver.MemoryInUse(Math.Max(Device.index, 0))?.Used ?? 0;

    private static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Resets VmHWM (Linux: writing 5 to /proc/self/clear_refs).</summary>
    public static void ResetVmHwm()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>A memory field of /proc/self/status (VmRSS, VmHWM) in GiB; NaN where there is none.</summary>
    public static double ProcGib(string field)
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal));
            return line is null ? double.NaN : long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]) / 1024.0 / 1024.0;
        }
        catch (IOException) { return double.NaN; }
    }
}
