using System.Diagnostics;
using System.Globalization;
using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// Training-step cost of each adapter method on the 128 attention Linears of SD 1.5 at 64x64 latents (random
/// weights): attn1 q/k/v/out and attn2 q/out are C x C on the block's tokens (4096/1024/256/64 per level), attn2
/// k/v are 768 -> C on 77 context tokens; C = 320, 640, 1280 over the 16 transformer blocks. A step is forward of
/// every layer, backward (input gradients of the hidden states included, the context needs none), AdamW step and
/// AdapterLayer.OnOptimizerStep (SingLoRA ramp, SDS-LoRA bases). Methods run round-robin (rotated each round) so that load on the
/// shared machine hits them alike; medians and paired ratios are reported. Usage: AdapterBenchmark.Run(["--ranks", "4,16", "--batch", "1", "--reps", "3"]).
/// </summary>
public static class AdapterBenchmark
{
    private sealed record Shape(int DIn, int DOut, int Tokens, bool Bias, bool InputGrad, string Kind);

    private sealed record Variant(string Name, AdapterOptions Options);

    public static int Run(string[] args)
    {
        var ranks = CliArgs.Value(args, "--ranks", "4,16").Split(',').Select(int.Parse).ToArray();
        int batch = int.Parse(CliArgs.Value(args, "--batch", "1"), CultureInfo.InvariantCulture);
        int reps = int.Parse(CliArgs.Value(args, "--reps", "3"), CultureInfo.InvariantCulture);
        bool quick = args.Contains("--quick");
        if (CliArgs.Value(args, "--threads", "") is { Length: > 0 } threads) set_num_threads(int.Parse(threads, CultureInfo.InvariantCulture));
        var device = BenchDevice.FromArgs(args);
        Console.WriteLine($"SD 1.5 attention Linears, 64x64 latents, batch {batch}, on {device.Name}, {reps} timed steps per method (median), 1 warm-up");

        var shapes = Sd15AttentionShapes(quick);
        if (quick) Console.WriteLine("--quick: one transformer block per level (320/4096, 640/1024, 1280/256, 1280/64 tokens), same layer shapes");
        manual_seed(0);
        var bases = shapes.Select(s =>
        {
            var w = new Parameter(device.Put(randn([s.DOut, s.DIn]) / Math.Sqrt(s.DIn)), false);
            var b = s.Bias ? new Parameter(device.Put(zeros(s.DOut)), false) : null;
            return (w, b);
        }).ToList();
        var hidden = new Dictionary<(int, int), Tensor>();
        var inputs = shapes.Select(s =>
        {
            if (!hidden.TryGetValue((s.DIn, s.Tokens), out var x))
                hidden[(s.DIn, s.Tokens)] = x = device.Put(randn([batch, s.Tokens, s.DIn])).requires_grad_(s.InputGrad);
            return x;
        }).ToList();
        var grads = shapes.Select(s => device.Put(randn([batch, s.Tokens, s.DOut]))).ToList();
        Console.WriteLine($"{shapes.Count} layers, {bases.Sum(b => b.w.numel()) / 1e6:F1} M frozen weights");

        foreach (int rank in ranks)
        {
            var variants = new List<Variant>
            {
                new("LoRA", new AdapterOptions { Method = AdapterMethod.Lora, Rank = rank, Alpha = rank }),
                new("DoRA", new AdapterOptions { Method = AdapterMethod.Dora, Rank = rank, Alpha = rank }),
                new("SingLoRA", new AdapterOptions { Method = AdapterMethod.SingLora, Rank = rank, Alpha = rank, RampSteps = 1000 }),
                new("SDS-LoRA", new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = rank, Alpha = rank }),
            };
            variants.Add(new("SDS-LoRA (polar)", variants[3].Options with { SdsBasis = SdsBasis.Polar }));
            if (CliArgs.Value(args, "--methods", "") is { Length: > 0 } only)
            {
                var keep = only.Split(',').Select(m => m.Trim().ToLowerInvariant()).ToHashSet();
                variants = variants.Where((v, i) => i == 0 || keep.Contains(v.Name.ToLowerInvariant())).ToList();
            }

            var runs = variants.Select(v =>
            {
                var layers = bases.Select(b => AdapterInjector.Create(v.Options, b.w, b.b)).ToList();
                foreach (var l in layers)
                    foreach (var p in l.AdapterParameters())
                        using (no_grad()) if (p.Role == AdapterParameterRole.B) p.Tensor.normal_(0, 0.01);   // off init: SDS's Q_B is full rank
                var opt = LoraPlus.CreateAdamW(layers, new AdamWSettings(1e-4, WeightDecay: 0.01), lambda: 1);
                return (v, layers, opt, times: new List<double>(), cpu: new List<double>(), sys: new List<double>());
            }).ToList();

            // Round-robin with the starting method rotated each round, so no method always follows the same one
            // (DoRA's larger allocations slowed whichever step came next).
            for (int rep = 0; rep <= reps; rep++)
                for (int k = 0; k < runs.Count; k++)
                {
                    var run = runs[(k + rep) % runs.Count];
                    var (ms, cpuMs) = TimeStep(run.layers, run.opt, inputs, grads);
                    if (rep > 0) { run.times.Add(ms); run.cpu.Add(cpuMs); run.sys.Add(SysMs[^1]); }
                }

            double loraMs = Median(runs[0].times), loraCpu = Median(runs[0].cpu), loraMin = runs[0].cpu.Min();
            long loraParams = Trainable(runs[0].layers);
            Console.WriteLine();
            Console.WriteLine($"rank {rank} (medians; wall = elapsed, cpu = process CPU time, cpu min = least-disturbed step: the last two are less sensitive to other load)");
            Console.WriteLine($"  paired = median over rounds of (method / LoRA) {(device.IsCuda ? "wall" : "CPU")} time within the same round (round-robin order), the least noisy ratio");
            Console.WriteLine($"  {"method",-22}{"wall ms",9}{"x LoRA",8}{"cpu ms",9}{"x LoRA",8}{"cpu min",9}{"x LoRA",8}{"paired",8}{"trainable",13}{"x LoRA",8}{"sys ms",8}   wall ms per step");
            foreach (var run in runs)
            {
                double med = Median(run.times), cpu = Median(run.cpu);
                long n = Trainable(run.layers);
                // On CUDA the host's CPU time is launch overhead, not the work: pair the synchronised wall times there.
                double paired = device.IsCuda ? Median(run.times.Select((w, i) => w / runs[0].times[i]).ToList()) : Median(run.cpu.Select((c, i) => c / runs[0].cpu[i]).ToList());
                Console.WriteLine($"  {run.v.Name,-22}{med,9:F1}{med / loraMs,8:F3}{cpu,9:F0}{cpu / loraCpu,8:F3}{run.cpu.Min(),9:F0}{run.cpu.Min() / loraMin,8:F3}{paired,8:F3}{n,13:N0}{(double)n / loraParams,8:F3}{Median(run.sys),8:F0}   {string.Join(" ", run.times.Select(t => t.ToString("F1", CultureInfo.InvariantCulture)))}");
                Console.WriteLine($"RESULT adapters {{\"method\": \"{run.v.Name}\", \"rank\": {rank}, \"device\": \"{device.Device}\", \"median_ms\": {med:F2}, \"paired_vs_lora\": {paired:F3}}}");
            }
            var sds = runs.FirstOrDefault(r => r.v.Options.Method == AdapterMethod.SdsLora).layers?.Cast<SdsLoraLinear>().ToList() ?? [];
            var qrMs = Enumerable.Range(0, 3).Select(_ =>
            {
                var sw = Stopwatch.StartNew();
                SdsLoraLinear.RefreshBases(sds);
                return sw.Elapsed.TotalMilliseconds;
            }).ToList();
            if (sds.Count > 0) Console.WriteLine($"  SDS-LoRA bases (batched thin QR of Aᵀ and B) for all {sds.Count} layers, once per optimizer step: {Median(qrMs):F1} ms");
            // Layers are not disposed: they share (and would dispose) the frozen base weights used by the next rank.
            foreach (var run in runs) run.opt.Dispose();
        }
        return 0;
    }

    private static readonly List<double> SysMs = new();
    private static long _steps;

    private static (double WallMs, double CpuMs) TimeStep(List<AdapterLayer> layers, optim.Optimizer opt, List<Tensor> inputs, List<Tensor> grads)
    {
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var sys0 = process.PrivilegedProcessorTime;
        BenchDevice.Current.Sync();
        var sw = Stopwatch.StartNew();
        using (var scope = NewDisposeScope())
        {
            opt.zero_grad();
            foreach (var x in inputs.Distinct()) x.grad?.zero_();
            var outs = new List<Tensor>(layers.Count);
            for (int i = 0; i < layers.Count; i++) outs.Add(layers[i].forward(inputs[i]));
            autograd.backward(outs, grads);
            opt.step();
            AdapterLayer.OnOptimizerStep(layers, ++_steps);
        }
        BenchDevice.Current.Sync();
        double wall = sw.Elapsed.TotalMilliseconds;
        process.Refresh();
        SysMs.Add((process.PrivilegedProcessorTime - sys0).TotalMilliseconds);
        return (wall, (process.TotalProcessorTime - cpu0).TotalMilliseconds);
    }

    /// <summary>The 16 transformer blocks of SD 1.5 (down 2+2+2, mid 1, up 3+3+3) and their 8 attention Linears each.</summary>
    private static List<Shape> Sd15AttentionShapes(bool quick)
    {
        var blocks = new (int C, int Tokens)[]
        {
            (320, 4096), (320, 4096), (640, 1024), (640, 1024), (1280, 256), (1280, 256),
            (1280, 64),
            (1280, 256), (1280, 256), (1280, 256), (640, 1024), (640, 1024), (640, 1024), (320, 4096), (320, 4096), (320, 4096),
        };
        if (quick) blocks = blocks.Distinct().ToArray();
        var list = new List<Shape>();
        foreach (var (c, n) in blocks)
        {
            foreach (var leaf in new[] { "to_q", "to_k", "to_v" }) list.Add(new(c, c, n, false, true, "attn1." + leaf));
            list.Add(new(c, c, n, true, true, "attn1.to_out.0"));
            list.Add(new(c, c, n, false, true, "attn2.to_q"));
            list.Add(new(768, c, 77, false, false, "attn2.to_k"));
            list.Add(new(768, c, 77, false, false, "attn2.to_v"));
            list.Add(new(c, c, n, true, true, "attn2.to_out.0"));
        }
        return list;
    }

    private static long Trainable(IEnumerable<AdapterLayer> layers) =>
        layers.Sum(l => l.AdapterParameters().Where(p => p.Tensor.requires_grad).Sum(p => p.Tensor.numel()));

    private static double Median(List<double> xs)
    {
        var s = xs.OrderBy(x => x).ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}
