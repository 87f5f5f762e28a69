using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// This machine's practical FLOP rates in a dtype, measured now on the benchmark's device: a 4096³ matmul and the best
/// of four large 3x3 convolutions at SD 1.5 UNet shapes, batch 2, best of five runs each. Benchmarks compare against
/// these rather than a fixed figure: machines of one kind differ, and platform-notes.md's "410 GFLOP/s 3x3 conv" is
/// the CPU's bf16 rate (reproduced: 372 GFLOP/s for a 320-channel 64x64 conv in bf16, ~130 in fp32).
/// </summary>
public sealed record MachinePeaks(double MatmulGflops, double ConvGflops)
{
    /// <summary>The higher of two measurements: a peak underestimated on a busy moment would flatter the "of peak" figure.</summary>
    public MachinePeaks Max(MachinePeaks other) => new(Math.Max(MatmulGflops, other.MatmulGflops), Math.Max(ConvGflops, other.ConvGflops));

    public static MachinePeaks Measure(ScalarType dtype)
    {
        var device = BenchDevice.Current;
        using var _ = no_grad();
        double matmul;
        using (NewDisposeScope())
        {
            var a = device.Put(randn(4096, 4096).to_type(dtype));
            var b = device.Put(randn(4096, 4096).to_type(dtype));
            matmul = 2.0 * 4096 * 4096 * 4096 / OpTiming.BestMilliseconds(5, () => a.mm(b)) / 1e6;
        }
        double conv = 0;
        foreach (var (cin, cout, size) in new[] { (320, 320, 64), (640, 640, 32), (1280, 1280, 32), (1280, 1280, 16) })
        {
            using var scope = NewDisposeScope();
            var x = device.Put(randn(2, cin, size, size).to_type(dtype));
            var w = device.Put(randn(cout, cin, 3, 3).mul(0.01).to_type(dtype));
            double flops = 2.0 * 2 * cout * size * size * cin * 9;
            conv = Math.Max(conv, flops / OpTiming.BestMilliseconds(5, () => nn.functional.conv2d(x, w, padding: [1, 1])) / 1e6);
        }
        return new MachinePeaks(matmul, conv);
    }
}
