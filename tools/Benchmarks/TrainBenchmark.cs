using DiffusionPeft.Diffusion.Loading;
using System.Diagnostics;
using DiffusionPeft.Adapters;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// DreamBooth training step cost: the full-size SD 1.5 UNet (random weights, frozen, fp32 or bf16) with a rank-4
/// adapter (fp32 tensors; LoRA unless --methods names others) on every attention projection (to_q/to_k/to_v/to_out.0),
/// AdamW over the adapters, batch 1 of 64x64 latents (512 px; --batch 2 is a prior-preservation step: instance + class)
/// and 77 context tokens; an MSE against random noise as the loss; the per-step adapter hook (SingLoRA ramp, SDS-LoRA
/// bases) after each step. Reports ms/step after warm-up (clocks synchronised on CUDA) and peak memory (see
/// <see cref="BenchDevice"/>); --checkpointing recomputes the transformer blocks in backward.
/// </summary>
public static class TrainBenchmark
{
    public const string Help = "training steps of the full-size SD 1.5 UNet with a rank-4 adapter: [--device cpu|cuda[:N]] [--tf32] [--dtype fp32|bf16|both] [--methods lora,singlora,sdslora,...] [--steps 3] [--warmup 1] [--rank 4] [--batch 1] [--size 64] [--tiny] [--checkpointing] [--threads N]";

    private sealed record Options(ScalarType[] DTypes, int Steps, int Warmup, int Rank, int Size, bool Tiny, int? Threads, bool Checkpointing = false, int Batch = 1, bool BothDTypes = true)
    {
        public AdapterMethod[] Methods { get; init; } = [AdapterMethod.Lora];
    }

    public static int Run(string[] args)
    {
        Options o;
        try { o = Parse(args); }
        catch (ArgumentException ex) { Console.Error.WriteLine(ex.Message); Console.Error.WriteLine(Help); return 2; }
        if (o.Threads is int t) set_num_threads(t);
        var device = BenchDevice.FromArgs(args);
        foreach (var dtype in o.DTypes)
        {
            if (device.SlowDTypeNote(dtype) is { } note)
            {
                Console.WriteLine(note);
                if (o.BothDTypes) { Console.WriteLine("  bf16 skipped (--dtype both); ask for --dtype bf16 to time it anyway"); continue; }
            }
            RunOne(o, dtype, device);
        }
        return 0;
    }

    private static void RunOne(Options o, ScalarType dtype, BenchDevice device)
    {
        manual_seed(0);
        StableDiffusionModel? tiny = null;
        UNet2DConditionModel unet;
        if (o.Tiny)
        {
            tiny = EmbeddedDefaultModel.CreateUntrained(device.Device, dtype);
            unet = tiny.Unet;
        }
        else
        {
            unet = new UNet2DConditionModel(UNet2DConditionConfig.StableDiffusion15);
            if (dtype != ScalarType.Float32) unet.to(dtype);
            if (device.IsCuda) unet.to(device.Device);
        }
        try
        {
            var config = unet.Config;
            var latents = device.Put(randn(o.Batch, config.InChannels, o.Size, o.Size).to_type(dtype));
            var context = device.Put(randn(o.Batch, 77, config.CrossAttentionDim[0]).to_type(dtype));
            var target = device.Put(randn(o.Batch, config.OutChannels, o.Size, o.Size));
            var timestep = device.Put(tensor(Enumerable.Range(0, o.Batch).Select(i => 500L + 37 * i).ToArray()));
            unet.train();
            unet.GradientCheckpointing = o.Checkpointing;
            foreach (var method in o.Methods)
            {
                var options = new AdapterOptions { Method = method, Rank = o.Rank, Alpha = o.Rank, ParameterDType = ScalarType.Float32, RampSteps = 1000 };
                var report = AdapterInjector.Inject(unet, options, InjectionTargets.UNetAttention, "unet");
                var layers = report.Layers.Select(l => l.Layer).ToList();
                using (no_grad())
                    foreach (var p in layers.SelectMany(l => l.AdapterParameters()).Where(p => p.Role == AdapterParameterRole.B))
                        p.Tensor.normal_(0, 0.01);   // off init, so SDS-LoRA's bases take their steady-state route
                using var optimizer = LoraPlus.CreateAdamW(layers, new AdamWSettings(1e-4, WeightDecay: 1e-2), lambda: 1);
                Console.WriteLine($"{(o.Tiny ? "tiny embedded UNet" : "SD 1.5 UNet (random weights)")}, base {Name(dtype)}, {method} rank {o.Rank} fp32 on {report.Layers.Count} layers " +
                                  $"({report.TrainableParameters:N0} parameters), batch {o.Batch}, latents {o.Size}x{o.Size}, 77 tokens, on {device.Name}" +
                                  (o.Checkpointing ? ", activation checkpointing" : ""));
                device.ResetPeak();
                var times = new List<double>();
                for (int i = 0; i < o.Warmup + o.Steps; i++)
                {
                    device.Sync();
                    var sw = Stopwatch.StartNew();
                    using (var scope = NewDisposeScope())
                    {
                        optimizer.zero_grad();
                        var prediction = unet.forward(latents, timestep, context).to_type(ScalarType.Float32);
                        var loss = nn.functional.mse_loss(prediction, target);
                        loss.backward();
                        optimizer.step();
                        AdapterLayer.OnOptimizerStep(layers, i + 1);
                        if (i == 0) Console.WriteLine($"  step 1 loss {loss.item<float>():F4}");
                    }
                    device.Sync();
                    device.Sample();
                    if (i >= o.Warmup) times.Add(sw.Elapsed.TotalMilliseconds);
                }
                Console.WriteLine($"  {method} {Name(dtype)}: {times.Average():F1} ms/step (min {times.Min():F1}) over {times.Count} steps; {device.Peak()}");
                Console.WriteLine($"RESULT train {{\"method\": \"{method.ToString().ToLowerInvariant()}\", \"device\": \"{device.Device}\", \"dtype\": \"{Name(dtype)}\", \"batch\": {o.Batch}, " +
                                  $"\"mean_ms\": {times.Average():F2}, \"min_ms\": {times.Min():F2}, \"peak_gib\": {device.PeakGib:F2}, \"checkpointing\": {(o.Checkpointing ? "true" : "false")}}}");
                foreach (var l in report.Layers) AdapterInjector.Remove(unet, l.Path);
            }
        }
        finally
        {
            if (tiny is not null) tiny.Dispose(); else unet.Dispose();
        }
    }

    private static string Name(ScalarType t) => t == ScalarType.BFloat16 ? "bf16" : "fp32";

    private static AdapterMethod Method(string name) =>
        Enum.GetValues<AdapterMethod>().FirstOrDefault(m => m.ToString().Equals(name.Trim(), StringComparison.OrdinalIgnoreCase), (AdapterMethod)(-1)) is var m && Enum.IsDefined(m)
            ? m : throw new ArgumentException($"--methods: unknown method '{name}' (lora, rslora, dora, loraplus, singlora, sdslora)");

    private static Options Parse(string[] args)
    {
        var o = new Options([ScalarType.Float32, ScalarType.BFloat16], 3, 1, 4, 64, false, null);
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() { var v = Value(); return int.TryParse(v, out int n) && n >= 0 ? n : throw new ArgumentException($"{args[i - 1]}: expected a non-negative integer, got '{v}'"); }
            Options Skip() { Value(); return o; }
            o = args[i] switch
            {
                "--dtype" => Value() switch
                {
                    "fp32" => o with { DTypes = [ScalarType.Float32], BothDTypes = false },
                    "bf16" => o with { DTypes = [ScalarType.BFloat16], BothDTypes = false },
                    "both" => o with { DTypes = [ScalarType.Float32, ScalarType.BFloat16], BothDTypes = true },
                    var v => throw new ArgumentException($"--dtype: expected fp32, bf16 or both, got '{v}'"),
                },
                "--methods" => o with { Methods = Value().Split(',').Select(Method).ToArray() },
                "--steps" => o with { Steps = Math.Max(1, Int()) },
                "--warmup" => o with { Warmup = Int() },
                "--rank" => o with { Rank = Math.Max(1, Int()) },
                "--batch" => o with { Batch = Math.Max(1, Int()) },
                "--size" => o with { Size = Math.Max(8, Int()) },
                "--tiny" => o with { Tiny = true, Size = o.Size == 64 ? 8 : o.Size },
                "--checkpointing" => o with { Checkpointing = true },
                "--threads" => o with { Threads = Math.Max(1, Int()) },
                "--device" => Skip(),   // read by BenchDevice.FromArgs
                "--tf32" => o,
                _ => throw new ArgumentException($"unknown option '{args[i]}'"),
            };
        }
        return o;
    }
}
