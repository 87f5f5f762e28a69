using System.Diagnostics;
using DiffusionPeft.Diffusion.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// Full-size Stable Diffusion 1.5 UNet (random weights): forward and forward+backward time, peak memory (VmHWM) and
/// achieved FLOP rate. FLOPs are counted with forward hooks on every Conv2d, Linear and Attention (Q Kᵀ and
/// attention·V) during the first pass; backward is taken as 2x forward. The "roofline" figure compares the measured
/// time with convolution FLOPs at the conv peak plus matmul FLOPs at the matmul peak.
/// </summary>
public static class UNetBenchmark
{
    public const string Help = "full-size SD 1.5 UNet: [--device cpu|cuda[:N]] [--tf32] [--dtype fp32|bf16] [--backward] [--batch 2] [--size 64] [--tokens 77] [--iters 1] [--warmup 1] [--threads N] [--profile] [--compare-conv-routes]";

    // platform-notes.md's figures, shown for reference; the roofline uses the peaks measured at start-up (MachinePeaks).
    private const double NotesMatmulGflops = 175;
    private const double NotesConvGflops = 410;

    private sealed record Options(ScalarType DType, bool Backward, int Batch, int Size, int Tokens, int Iters, int Warmup, int? Threads, bool Profile = false, bool CompareConvRoutes = false);

    public static int Run(string[] args)
    {
        Options o;
        try { o = Parse(args); }
        catch (ArgumentException ex) { Console.Error.WriteLine(ex.Message); Console.Error.WriteLine(Help); return 2; }
        if (o.Threads is int t) set_num_threads(t);
        var device = BenchDevice.FromArgs(args);
        if (o.Profile && device.IsCuda) { Console.Error.WriteLine("--profile brackets modules with CPU clocks: CPU only."); return 2; }
        if (device.SlowDTypeNote(o.DType) is { } note) Console.WriteLine(note);

        var peaks = MachinePeaks.Measure(o.DType);
        Console.WriteLine($"  measured peaks ({(o.DType == ScalarType.BFloat16 ? "bf16" : "fp32")}): matmul 4096³ {peaks.MatmulGflops:F0} GFLOP/s, best 3x3 conv {peaks.ConvGflops:F0} GFLOP/s " +
                          $"(platform-notes.md: {NotesMatmulGflops}/{NotesConvGflops})");
        _peaks = peaks;
        _dtypeName = o.DType == ScalarType.BFloat16 ? "bf16" : "fp32";
        var config = UNet2DConditionConfig.StableDiffusion15;
        Console.WriteLine($"UNet SD 1.5 (random weights), {(o.DType == ScalarType.BFloat16 ? "bf16" : "fp32")}, batch {o.Batch}, latents {o.Size}x{o.Size}, " +
                          $"{o.Tokens} context tokens, on {device.Name}");
        var build = Stopwatch.StartNew();
        manual_seed(0);
        var unet = new UNet2DConditionModel(config);
        if (o.DType != ScalarType.Float32) unet.to(o.DType);
        if (device.IsCuda) unet.to(device.Device);
        long parameters = unet.parameters().Sum(p => p.numel());
        Console.WriteLine($"  built in {build.Elapsed.TotalSeconds:F1} s: {parameters / 1e6:F1} M parameters, RSS {BenchDevice.ProcGib("VmRSS"):F2} GiB");

        var x = device.Put(randn(o.Batch, config.InChannels, o.Size, o.Size).to_type(o.DType));
        var ctx = device.Put(randn(o.Batch, o.Tokens, config.CrossAttentionDim[0]).to_type(o.DType));
        var timestep = device.Put(tensor(Enumerable.Range(0, o.Batch).Select(i => 999L - 37 * i).ToArray()));

        var counter = new FlopCounter(unet);
        unet.eval();
        var fwd = Measure("forward", o, counter, () =>
        {
            using var _ = no_grad();
            unet.Forward(x, timestep, ctx);
        });
        // Peaks again after the timed pass, the higher kept (see MachinePeaks.Max).
        _peaks = _peaks.Max(MachinePeaks.Measure(o.DType));
        Console.WriteLine($"  peaks measured again after the forward; kept: matmul {_peaks.MatmulGflops:F0}, conv {_peaks.ConvGflops:F0} GFLOP/s");
        Report("forward", fwd, counter.ConvFlops, counter.MatmulFlops);
        if (o.CompareConvRoutes)
        {
            // A/B in one process, alternating, so the machine's drift hits both alike.
            var times = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
            for (int i = 0; i < 2 * o.Iters; i++)
            {
                bool gemm = i % 2 == 0;
                ShapeAwareConv2d.UseGemmRoutes = gemm;
                device.Sync();
                var sw = Stopwatch.StartNew();
                using (var scope = NewDisposeScope())
                using (no_grad()) unet.Forward(x, timestep, ctx);
                device.Sync();
                times[gemm].Add(sw.Elapsed.TotalSeconds);
            }
            ShapeAwareConv2d.UseGemmRoutes = true;
            Console.WriteLine($"  conv routes, alternating: GEMM routes best {times[true].Min():F2} s [{string.Join(", ", times[true].Select(t => t.ToString("F2")))}], " +
                              $"conv2d only best {times[false].Min():F2} s [{string.Join(", ", times[false].Select(t => t.ToString("F2")))}]");
        }
        if (o.Profile)
        {
            var profiler = new ModuleProfiler(unet);
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            using (no_grad()) unet.Forward(x, timestep, ctx);
            double ms = sw.Elapsed.TotalMilliseconds;
            profiler.Detach();
            Console.WriteLine($"  profiled forward: {ms / 1000:F2} s");
            profiler.Print(ms);
        }

        if (o.Backward)
        {
            unet.train();
            var fb = Measure("forward+backward", o, null, () =>
            {
                unet.zero_grad();
                var y = unet.Forward(x, timestep, ctx);
                y.to_type(ScalarType.Float32).pow(2).mean().backward();
            });
            Report("forward+backward", fb, 3 * counter.ConvFlops, 3 * counter.MatmulFlops);
        }
        return 0;
    }

    private sealed record Timing(double[] Seconds, string PeakMemory, double PeakGib)
    {
        public double Best => Seconds.Min();
    }

    private static Timing Measure(string what, Options o, FlopCounter? counter, Action step)
    {
        var device = BenchDevice.Current;
        device.ResetPeak();
        // The first pass counts FLOPs (hooks on); with --warmup 0 it is also the timed pass.
        for (int i = 0; i < Math.Max(o.Warmup, counter is null ? 0 : 1); i++)
        {
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope()) step();
            device.Sync();
            device.Sample();
            counter?.Detach();
            Console.WriteLine($"  {what} warm-up/counting pass: {sw.Elapsed.TotalSeconds:F3} s");
            if (o.Warmup == 0) return new Timing([sw.Elapsed.TotalSeconds], device.Peak(), device.PeakGib);
        }
        var times = new double[o.Iters];
        for (int i = 0; i < o.Iters; i++)
        {
            device.Sync();
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope()) step();
            device.Sync();
            times[i] = sw.Elapsed.TotalSeconds;
            device.Sample();
        }
        return new Timing(times, device.Peak(), device.PeakGib);
    }

    private static MachinePeaks _peaks = new(NotesMatmulGflops, NotesConvGflops);
    private static string _dtypeName = "fp32";

    private static void Report(string what, Timing t, double convFlops, double matmulFlops)
    {
        double total = convFlops + matmulFlops;
        double ideal = convFlops / (_peaks.ConvGflops * 1e9) + matmulFlops / (_peaks.MatmulGflops * 1e9);
        double notesIdeal = convFlops / (NotesConvGflops * 1e9) + matmulFlops / (NotesMatmulGflops * 1e9);
        Console.WriteLine($"RESULT unet {{\"what\": \"{what}\", \"device\": \"{BenchDevice.Current.Device}\", \"dtype\": \"{_dtypeName}\", \"best_ms\": {t.Best * 1000:F2}, \"peak_gib\": {t.PeakGib:F2}}}");
        Console.WriteLine($"  {what}: best {t.Best * 1000:F1} ms of [{string.Join(", ", t.Seconds.Select(s => (s * 1000).ToString("F1")))}], {t.PeakMemory}");
        Console.WriteLine($"    {total / 1e12:F3} TFLOP ({convFlops / 1e12:F3} conv, {matmulFlops / 1e12:F3} linear+attention) -> " +
                          $"{total / t.Best / 1e9:F1} GFLOP/s; roofline time at the measured {_peaks.ConvGflops:F0}/{_peaks.MatmulGflops:F0} GFLOP/s peaks {ideal:F2} s = {100 * ideal / t.Best:F0}% of peak " +
                          $"(at the notes' {NotesConvGflops}/{NotesMatmulGflops}: {notesIdeal:F2} s = {100 * notesIdeal / t.Best:F0}%)");
    }

    /// <summary>Counts multiply-add FLOPs (2 per MAC) from the shapes seen by forward hooks.</summary>
    private sealed class FlopCounter
    {
        public double ConvFlops { get; private set; }
        public double MatmulFlops { get; private set; }
        private readonly List<Action> _removers = [];

        public FlopCounter(nn.Module root)
        {
            foreach (var (_, m) in root.named_modules())
            {
                switch (m)
                {
                    case ShapeAwareConv2d conv:
                        var h_conv = conv.register_forward_hook((mod, input, output) =>
                        {
                            var w = conv.weight.shape; // [out, in, kh, kw]
                            ConvFlops += 2.0 * output.numel() * w[1] * w[2] * w[3];
                            return output;
                        });
                        _removers.Add(h_conv.remove);
                        break;
                    case Linear linear:
                        var h_linear = linear.register_forward_hook((mod, input, output) =>
                        {
                            MatmulFlops += 2.0 * output.numel() * linear.weight!.shape[1];
                            return output;
                        });
                        _removers.Add(h_linear.remove);
                        break;
                    case Attention attn:
                        var h_attn = attn.register_forward_hook((mod, hidden, context, output) =>
                        {
                            long b = hidden.shape[0];
                            long n = hidden.ndim == 4 ? hidden.shape[2] * hidden.shape[3] : hidden.shape[1];
                            long m2 = context?.shape[1] ?? n;
                            MatmulFlops += 2.0 * 2.0 * b * n * m2 * attn.Heads * attn.DimHead; // Q Kᵀ and P V
                            return output;
                        });
                        _removers.Add(h_attn.remove);
                        break;
                }
            }
        }

        public void Detach()
        {
            foreach (var remove in _removers) remove();
            _removers.Clear();
        }
    }

    private static Options Parse(string[] args)
    {
        var o = new Options(ScalarType.Float32, false, 2, 64, 77, 1, 1, null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int NextInt(int min) => int.TryParse(Next(), out var v) && v >= min ? v : throw new ArgumentException($"{args[i - 1]}: expected an integer >= {min}");
            Options Skip() { Next(); return o; }
            o = args[i] switch
            {
                "--dtype" => o with
                {
                    DType = Next() switch
                    {
                        "fp32" or "float32" => ScalarType.Float32,
                        "bf16" or "bfloat16" => ScalarType.BFloat16,
                        var d => throw new ArgumentException($"--dtype: '{d}' is not fp32 or bf16"),
                    }
                },
                "--backward" => o with { Backward = true },
                "--profile" => o with { Profile = true },
                "--compare-conv-routes" => o with { CompareConvRoutes = true },
                "--batch" => o with { Batch = NextInt(1) },
                "--size" => o with { Size = NextInt(8) },
                "--tokens" => o with { Tokens = NextInt(1) },
                "--iters" => o with { Iters = NextInt(1) },
                "--warmup" => o with { Warmup = NextInt(0) },
                "--threads" => o with { Threads = NextInt(1) },
                "--device" => Skip(),   // read by BenchDevice.FromArgs
                "--tf32" => o,
                var a => throw new ArgumentException($"unknown option '{a}'"),
            };
        }
        return o;
    }
}
