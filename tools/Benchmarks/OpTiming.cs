using System.Diagnostics;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// Best-of-N wall time of one tensor op after one warm-up call, each call in its own dispose scope; on CUDA the
/// clock starts and stops on a synchronised device (kernels run asynchronously).
/// </summary>
public static class OpTiming
{
    public static double BestMilliseconds(int reps, Func<Tensor> op)
    {
        var device = BenchDevice.Current;
        using (NewDisposeScope()) op();   // warm-up
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            using var scope = NewDisposeScope();
            device.Sync();
            var sw = Stopwatch.StartNew();
            op();
            device.Sync();
            best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
        }
        return best;
    }
}
