using System.Diagnostics;
using System.Globalization;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld.Vocabulary;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// One training step (forward, backward, AdamW) of each toy-model stage at its widths and batch, median of N, to size
/// the toy recipe against its time budget: the VAE on 64×64 scenes, the CLIP pair, the UNet on 16×16×4 latents (--latent-size 32: the shipped model's 32×32×4).
/// </summary>
public static class ToyModelBenchmark
{
    public const string Help = "toy-model stage steps: [--vae-width 64] [--vae-batch 16] [--text-width 128] [--clip-batch 128] [--unet-width 32] [--unet-batch 64] [--latent-size 16|32] [--top-attention none|full|cross_only] [--text-embedding] [--unet-dtype fp32|bf16] [--pretrain-dtype fp32|bf16] [--skip-pretrain] [--reps 5] [--threads N]";

    public static int Run(string[] args)
    {
        int Arg(string name, int fallback) => CliArgs.Int(args, name, fallback);
        if (CliArgs.Value(args, "--threads", "") is { Length: > 0 } threads) set_num_threads(int.Parse(threads, CultureInfo.InvariantCulture));
        int reps = Arg("--reps", 5);
        int grid = Arg("--latent-size", 16);
        var tokenizer = ToyVocabulary.CreateTokenizer();
        Console.WriteLine($"threads {get_num_threads()}, {reps} timed steps each (after one warm-up)");

        manual_seed(0);
        // bf16 times the forward and backward in bf16 weights and activations, what mixed precision computes in; its fp32
        // master weights (dpeft train --mode full --dtype bf16) and their copies each step are not timed here.
        var dtype = DType(args, "--unet-dtype");
        var pretrainDType = DType(args, "--pretrain-dtype");
        bool pretrain = !args.Contains("--skip-pretrain");   // --skip-pretrain: the UNet alone
        int vb = Arg("--vae-batch", 16);
        if (pretrain)
        using (var vae = new AutoencoderKL(ToyModelConfigs.Vae(Arg("--vae-width", 64), grid)))
        {
            vae.to(pretrainDType);
            var x = (rand(vb, 3, 64, 64) * 2 - 1).to(pretrainDType);
            Time($"VAE width {Arg("--vae-width", 64)}, {grid}×{grid} latents, {pretrainDType}, batch {vb}", vae, reps, () =>
            {
                var p = vae.Encode(x);
                return (vae.Decode(p.Mean + p.Std * randn_like(p.Mean)) - x).to(ScalarType.Float32).pow(2).mean();
            });
        }
        int cb = Arg("--clip-batch", 128);
        if (pretrain)
        using (var clip = new ToyClip(ToyModelConfigs.TextEncoder(tokenizer, Arg("--text-width", 128)), Arg("--text-width", 128)))
        {
            clip.to(pretrainDType);
            var x = (rand(cb, 3, 64, 64) * 2 - 1).to(pretrainDType);
            var ids = randint(0, tokenizer.VocabSize, [cb, 32]);
            Time($"CLIP text width {Arg("--text-width", 128)}, {pretrainDType}, batch {cb}", clip, reps, () =>
                nn.functional.cross_entropy(clip.call(x, ids).to(ScalarType.Float32), arange(cb, ScalarType.Int64)));
        }
        int ub = Arg("--unet-batch", 64);
        var topText = CliArgs.Value(args, "--top-attention", "none");
        var top = TrainConfigYaml.ParseEnum<TopLevelAttention>(topText)
                  ?? throw new ArgumentException($"--top-attention takes {TrainConfigYaml.EnumNames(typeof(TopLevelAttention))} (got {topText})");
        bool textEmbedding = args.Contains("--text-embedding");   // the caption pooled into the timestep embedding too
        using (var unet = new UNet2DConditionModel(ToyModelConfigs.Unet(Arg("--text-width", 128), Arg("--unet-width", 32), grid, top, textEmbedding)))
        {
            unet.to(dtype);
            var z = randn(ub, 4, grid, grid).to(dtype);
            var t = randint(0, 1000, [ub]);
            var text = randn(ub, 32, Arg("--text-width", 128)).to(dtype);
            long n = unet.parameters().Sum(p => p.numel());
            Time($"UNet width {Arg("--unet-width", 32)}, {grid}×{grid}, top {TrainConfigYaml.EnumName(top)}{(textEmbedding ? ", text embedding" : "")}, {dtype} ({n:N0} weights), batch {ub}", unet, reps,
                () => (unet.forward(z, t, text) - z).to(ScalarType.Float32).pow(2).mean());
        }
        return 0;
    }

    private static ScalarType DType(string[] args, string flag)
    {
        var text = CliArgs.Value(args, flag, "fp32").Trim().ToLowerInvariant();
        return text switch
        {
            "fp32" => ScalarType.Float32,
            "bf16" => ScalarType.BFloat16,
            _ => throw new ArgumentException($"{flag} takes fp32 or bf16 (got {text})"),
        };
    }

    private static void Time(string what, nn.Module module, int reps, Func<Tensor> loss)
    {
        using var opt = optim.AdamW(module.parameters(), 1e-4);
        var times = new List<double>();
        for (int i = 0; i <= reps; i++)
        {
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                opt.zero_grad();
                loss().backward();
                opt.step();
            }
            if (i > 0) times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        Console.WriteLine($"  {what,-50} {times[times.Count / 2],8:F0} ms/step (min {times[0]:F0})");
    }
}
