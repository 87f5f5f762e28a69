using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// The UNet's primitive ops at SD 1.5's shapes (batch 2, 64x64 latents), each timed alone: every distinct 3x3
/// convolution and self-attention call, with its GFLOP/s. Finds which shapes fall short of the machine's peaks.
/// </summary>
public static class OpsBenchmark
{
    public const string Help = "SD 1.5 UNet primitives alone (3x3 convs, self-attention) at their shapes: [--device cpu|cuda[:N]] [--tf32] [--dtype fp32|bf16] [--reps 3] [--only conv|pointwise|attention|matmul] [--threads N]";

    public static int Run(string[] args)
    {
        var dtype = CliArgs.Value(args, "--dtype", "fp32") == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        int reps = int.Parse(CliArgs.Value(args, "--reps", "3"));
        string only = CliArgs.Value(args, "--only", "");
        int batch = int.Parse(CliArgs.Value(args, "--batch", "2"));
        bool channelsLast = args.Contains("--channels-last");
        if (CliArgs.Value(args, "--threads", "") is { Length: > 0 } t) set_num_threads(int.Parse(t));
        var device = BenchDevice.FromArgs(args);
        if (device.SlowDTypeNote(dtype) is { } note) Console.WriteLine(note);
        Console.WriteLine($"{dtype}, on {device.Name}, best of {reps}");
        using var _ = no_grad();
        if (only is "" or "matmul")
        {
            var a = device.Put(randn(4096, 4096).to_type(dtype));
            var bm = device.Put(randn(4096, 4096).to_type(dtype));
            double ms = OpTiming.BestMilliseconds(reps, () => a.mm(bm));
            Console.WriteLine($"  matmul 4096^3: {ms:F0} ms, {2.0 * 4096 * 4096 * 4096 / ms / 1e6:F0} GFLOP/s");
        }
        if (only is "" or "conv")
        {
            // (in, out, size, stride, count in the UNet)
            var convs = new (int In, int Out, int Size, int Stride, int Count)[]
            {
                (4, 320, 64, 1, 1), (320, 320, 64, 1, 4), (320, 320, 64, 2, 1),
                (320, 640, 32, 1, 1), (640, 640, 32, 1, 3), (640, 640, 32, 2, 1),
                (640, 1280, 16, 1, 1), (1280, 1280, 16, 1, 3), (1280, 1280, 16, 2, 1),
                (1280, 1280, 8, 1, 8), (2560, 1280, 8, 1, 3), (1280, 1280, 8, 1, 3),
                (1280, 1280, 16, 1, 4), (2560, 1280, 16, 1, 2), (1920, 1280, 16, 1, 1),
                (1280, 1280, 32, 1, 1), (1920, 640, 32, 1, 1), (1280, 640, 32, 1, 1), (960, 640, 32, 1, 1), (640, 640, 32, 1, 3),
                (640, 640, 64, 1, 1), (960, 320, 64, 1, 1), (640, 320, 64, 1, 2), (320, 320, 64, 1, 3), (320, 4, 64, 1, 1),
            };
            Console.WriteLine($"  {"conv 3x3 (in->out @ size, stride)",-36}{"count",6}{"ms",9}{"GFLOP/s",9}{"total ms",10}");
            double total = 0;
            foreach (var c in convs)
            {
                var x = device.Put(randn(batch, c.In, c.Size, c.Size).to_type(dtype));
                if (channelsLast) x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
                var w = device.Put(randn(c.Out, c.In, 3, 3).mul(0.01).to_type(dtype));
                if (channelsLast) w = w.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
                var b = device.Put(zeros(c.Out).to_type(dtype));
                double ms = OpTiming.BestMilliseconds(reps, () => nn.functional.conv2d(x, w, b, strides: [c.Stride, c.Stride], padding: [1, 1]));
                long outSize = c.Size / c.Stride;
                double flops = 2.0 * batch * c.Out * outSize * outSize * c.In * 9;
                total += ms * c.Count;
                Console.WriteLine($"  {$"{c.In}->{c.Out} @ {c.Size}, s{c.Stride}",-36}{c.Count,6}{ms,9:F1}{flops / ms / 1e6,9:F0}{ms * c.Count,10:F0}");
            }
            Console.WriteLine($"  all 3x3 convs of one forward: {total:F0} ms");
            Console.WriteLine("  im2col + matmul (unfold, one GEMM per image batch) for the small maps:");
            foreach (var c in convs.Where(c => c.Size <= 16 && c.Stride == 1))
            {
                var x = device.Put(randn(batch, c.In, c.Size, c.Size).to_type(dtype));
                var w = device.Put(randn(c.Out, c.In, 3, 3).mul(0.01).to_type(dtype));
                var w2 = w.reshape(c.Out, -1);
                double direct = OpTiming.BestMilliseconds(reps, () => nn.functional.conv2d(x, w, padding: [1, 1]));
                double gemm = OpTiming.BestMilliseconds(reps, () => w2.matmul(nn.functional.unfold(x, 3, padding: 1)).view(batch, c.Out, c.Size, c.Size));
                var diff = (w2.matmul(nn.functional.unfold(x, 3, padding: 1)).view(batch, c.Out, c.Size, c.Size) - nn.functional.conv2d(x, w, padding: [1, 1])).abs().max().to_type(ScalarType.Float32).item<float>();
                Console.WriteLine($"  {$"{c.In}->{c.Out} @ {c.Size}",-36}{"",6}{direct,9:F1}{gemm,9:F1}  max diff {diff:E1}");
            }
        }
        if (only is "" or "pointwise")
        {
            Console.WriteLine($"  {"1x1 conv [b, in, hw] (in->out @ size)",-36}{"count",6}{"conv ms",9}{"mm ms",9}");
            foreach (var (cin, cout, size, count) in new[] { (320, 320, 64, 10), (640, 640, 32, 10), (1280, 1280, 16, 10), (1280, 1280, 8, 2), (960, 320, 64, 1), (640, 320, 64, 2), (320, 640, 32, 1), (1920, 640, 32, 1), (1280, 640, 32, 1), (960, 640, 32, 1), (640, 1280, 16, 1), (2560, 1280, 16, 2), (1920, 1280, 16, 1), (2560, 1280, 8, 3) })
            {
                var x = device.Put(randn(batch, cin, size, size).to_type(dtype));
                var w = device.Put(randn(cout, cin, 1, 1).mul(0.01).to_type(dtype));
                var b = device.Put(zeros(cout).to_type(dtype));
                var w2 = w.view(cout, cin);
                double conv = OpTiming.BestMilliseconds(reps, () => nn.functional.conv2d(x, w, b));
                Tensor Pointwise() => w2.matmul(x.view(batch, cin, size * size)).add_(b.view(1, cout, 1)).view(batch, cout, size, size);
                double bmm = OpTiming.BestMilliseconds(reps, Pointwise);
                var diff = (Pointwise() - nn.functional.conv2d(x, w, b)).abs().max().to_type(ScalarType.Float32).item<float>();
                Console.WriteLine($"  {$"{cin}->{cout} @ {size}",-36}{count,6}{conv,9:F1}{bmm,9:F1}  diff {diff:E1}");
            }
        }
        if (only is "" or "attention")
        {
            Console.WriteLine($"  {"self-attention [b, heads, tokens, dim]",-36}{"count",6}{"ms",9}{"GFLOP/s",9}{"total ms",10}");
            foreach (var (c, n, count) in new[] { (320, 4096, 5), (640, 1024, 5), (1280, 256, 5), (1280, 64, 1) })
            {
                var q = device.Put(randn(batch, 8, n, c / 8).to_type(dtype));
                var k = device.Put(randn(batch, 8, n, c / 8).to_type(dtype));
                var v = device.Put(randn(batch, 8, n, c / 8).to_type(dtype));
                double flops = 4.0 * batch * n * n * c;
                double ms = OpTiming.BestMilliseconds(reps, () => nn.functional.scaled_dot_product_attention(q, k, v));
                Console.WriteLine($"  {$"sdpa [2, 8, {n}, {c / 8}]",-36}{count,6}{ms,9:F1}{flops / ms / 1e6,9:F0}{ms * count,10:F0}");
                // as the model calls it: heads split from [b, n, c] projections (strided views), merged back after
                var qp = device.Put(randn(batch, n, c).to_type(dtype));
                var kp = device.Put(randn(batch, n, c).to_type(dtype));
                var vp = device.Put(randn(batch, n, c).to_type(dtype));
                Tensor Split(Tensor t) => t.view(batch, n, 8, c / 8).transpose(1, 2);
                double msView = OpTiming.BestMilliseconds(reps, () => nn.functional.scaled_dot_product_attention(Split(qp), Split(kp), Split(vp)).transpose(1, 2).reshape(batch, n, c));
                double msContig = OpTiming.BestMilliseconds(reps, () => nn.functional.scaled_dot_product_attention(Split(qp).contiguous(), Split(kp).contiguous(), Split(vp).contiguous()).transpose(1, 2).reshape(batch, n, c));
                Console.WriteLine($"  {"  from [b, n, c] views / contiguous",-36}{"",6}{msView,9:F1}{msContig,9:F1}");
                foreach (int chunk in new[] { 256, 1024 })
                {
                    if (chunk > n) continue;
                    double scale = 1 / Math.Sqrt(c / 8);
                    Tensor Manual()
                    {
                        var kt = k.transpose(-1, -2);
                        var outs = new List<Tensor>();
                        for (int i = 0; i < n; i += chunk)
                        {
                            var p = q.narrow(2, i, chunk).mul(scale).matmul(kt).softmax(-1);
                            outs.Add(p.matmul(v));
                        }
                        return cat(outs, 2);
                    }
                    double msManual = OpTiming.BestMilliseconds(reps, Manual);
                    var diff = (Manual() - nn.functional.scaled_dot_product_attention(q, k, v)).abs().max().to_type(ScalarType.Float32).item<float>();
                    Console.WriteLine($"  {$"  manual, query chunks of {chunk}",-36}{"",6}{msManual,9:F1}{flops / msManual / 1e6,9:F0}  diff {diff:E1}");
                }
            }
        }
        return 0;
    }
}
