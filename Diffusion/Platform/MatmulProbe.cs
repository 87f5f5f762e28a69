using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Platform;

/// <summary>fp32 and bf16 matmul rates measured on this CPU (GFLOP/s).</summary>
public sealed record MatmulRates(double Fp32, double Bf16)
{
    /// <summary>How many times faster bf16 runs than fp32 (below 1: slower).</summary>
    public double Bf16Speedup => Bf16 / Fp32;

    public override string ToString() => $"bf16 matmul {Bf16:F1} GFLOP/s, fp32 {Fp32:F1} GFLOP/s";
}

/// <summary>
/// A quick measurement (a fraction of a second) of a 256³ matmul in fp32 and bf16 on the CPU, best of a few: enough to
/// tell a CPU that runs bf16 on its own instructions from one that emulates it 60x slower, not a benchmark.
/// </summary>
public static class MatmulProbe
{
    private static readonly Lazy<MatmulRates> _cpu = new(() => Measure(256, 3));

    /// <summary>This CPU's rates, measured once per process.</summary>
    public static MatmulRates MeasureCpu() => _cpu.Value;

    public static MatmulRates Measure(int size, int repeats)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        return new MatmulRates(Rate(ScalarType.Float32, size, repeats), Rate(ScalarType.BFloat16, size, repeats));
    }

    private static double Rate(ScalarType dtype, int n, int repeats)
    {
        var gen = new Generator(0, CPU);
        var a = randn([n, n], device: CPU, generator: gen).to_type(dtype);
        var b = randn([n, n], device: CPU, generator: gen).to_type(dtype);
        a.matmul(b);   // oneDNN builds its kernel on the first call
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            a.matmul(b);
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }
}
