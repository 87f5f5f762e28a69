using DiffusionPeft.Diffusion.Loading;
using System.Diagnostics;
using DiffusionPeft.Adapters;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// DreamBooth training step cost: the full-size SD 1.5 UNet (random weights, frozen, fp32 or bf16) with a rank-4 LoRA
/// (fp32 tensors) on every attention projection (to_q/to_k/to_v/to_out.0), AdamW over the adapters, batch 1 of 64x64
/// latents (512 px) and 77 context tokens; an MSE against random noise as the loss. Reports s/step (after warm-up) and
/// peak RSS (VmHWM, reset through /proc/self/clear_refs before each dtype); --checkpointing recomputes the transformer blocks in backward.
/// </summary>
public static class TrainBenchmark
{
    public const string Help = "training steps of the full-size SD 1.5 UNet with a rank-4 LoRA: [--dtype fp32|bf16|both] [--steps 3] [--warmup 1] [--rank 4] [--size 64] [--tiny] [--checkpointing] [--threads N]";

    private sealed record Options(ScalarType[] DTypes, int Steps, int Warmup, int Rank, int Size, bool Tiny, int? Threads, bool Checkpointing = false);

    public static int Run(string[] args)
    {
        Options o;
        try { o = Parse(args); }
        catch (ArgumentException ex) { Console.Error.WriteLine(ex.Message); Console.Error.WriteLine(Help); return 2; }
        if (o.Threads is int t) set_num_threads(t);
        foreach (var dtype in o.DTypes) RunOne(o, dtype);
        return 0;
    }

    private static void RunOne(Options o, ScalarType dtype)
    {
        UNetBenchmark.ResetPeak();
        manual_seed(0);
        StableDiffusionModel? tiny = null;
        UNet2DConditionModel unet;
        if (o.Tiny)
        {
            tiny = EmbeddedDefaultModel.Create(dtype: dtype);
            unet = tiny.Unet;
        }
        else
        {
            unet = new UNet2DConditionModel(UNet2DConditionConfig.StableDiffusion15);
            if (dtype != ScalarType.Float32) unet.to(dtype);
        }
        try
        {
            var config = unet.Config;
            var options = new AdapterOptions { Rank = o.Rank, Alpha = o.Rank, ParameterDType = ScalarType.Float32 };
            var report = AdapterInjector.Inject(unet, options, InjectionTargets.UNetAttention, "unet");
            var parameters = report.Layers.SelectMany(l => l.Layer.AdapterParameters()).Select(p => p.Tensor).ToList();
            using var optimizer = optim.AdamW(parameters, lr: 1e-4, weight_decay: 1e-2);
            Console.WriteLine($"{(o.Tiny ? "tiny embedded UNet" : "SD 1.5 UNet (random weights)")}, base {Name(dtype)}, LoRA rank {o.Rank} fp32 on {report.Layers.Count} layers " +
                              $"({report.TrainableParameters:N0} parameters), batch 1, latents {o.Size}x{o.Size}, 77 tokens, {get_num_threads()} threads");

            var latents = randn(1, config.InChannels, o.Size, o.Size).to_type(dtype);
            var context = randn(1, 77, config.CrossAttentionDim[0]).to_type(dtype);
            var target = randn(1, config.OutChannels, o.Size, o.Size);
            var timestep = tensor(new long[] { 500 });
            unet.train();
            unet.GradientCheckpointing = o.Checkpointing;
            if (o.Checkpointing) Console.WriteLine("  activation checkpointing: on (transformer blocks)");
            var times = new List<double>();
            for (int i = 0; i < o.Warmup + o.Steps; i++)
            {
                var sw = Stopwatch.StartNew();
                using (var scope = NewDisposeScope())
                {
                    optimizer.zero_grad();
                    var prediction = unet.forward(latents, timestep, context).to_type(ScalarType.Float32);
                    var loss = nn.functional.mse_loss(prediction, target);
                    loss.backward();
                    optimizer.step();
                    if (i == 0) Console.WriteLine($"  step 1 loss {loss.item<float>():F4}");
                }
                if (i >= o.Warmup) times.Add(sw.Elapsed.TotalSeconds);
                Console.WriteLine($"  step {i + 1}{(i < o.Warmup ? " (warm-up)" : "")}: {sw.Elapsed.TotalSeconds:F2} s");
            }
            Console.WriteLine($"  {Name(dtype)}: {times.Average():F2} s/step (min {times.Min():F2}), peak RSS {UNetBenchmark.Proc("VmHWM")}");
        }
        finally
        {
            if (tiny is not null) tiny.Dispose(); else unet.Dispose();
        }
    }

    private static string Name(ScalarType t) => t == ScalarType.BFloat16 ? "bf16" : "fp32";

    private static Options Parse(string[] args)
    {
        var o = new Options([ScalarType.Float32, ScalarType.BFloat16], 3, 1, 4, 64, false, null);
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() { var v = Value(); return int.TryParse(v, out int n) && n >= 0 ? n : throw new ArgumentException($"{args[i - 1]}: expected a non-negative integer, got '{v}'"); }
            o = args[i] switch
            {
                "--dtype" => o with
                {
                    DTypes = Value() switch
                    {
                        "fp32" => [ScalarType.Float32],
                        "bf16" => [ScalarType.BFloat16],
                        "both" => [ScalarType.Float32, ScalarType.BFloat16],
                        var v => throw new ArgumentException($"--dtype: expected fp32, bf16 or both, got '{v}'"),
                    },
                },
                "--steps" => o with { Steps = Math.Max(1, Int()) },
                "--warmup" => o with { Warmup = Int() },
                "--rank" => o with { Rank = Math.Max(1, Int()) },
                "--size" => o with { Size = Math.Max(8, Int()) },
                "--tiny" => o with { Tiny = true, Size = o.Size == 64 ? 8 : o.Size },
                "--checkpointing" => o with { Checkpointing = true },
                "--threads" => o with { Threads = Math.Max(1, Int()) },
                _ => throw new ArgumentException($"unknown option '{args[i]}'"),
            };
        }
        return o;
    }
}
