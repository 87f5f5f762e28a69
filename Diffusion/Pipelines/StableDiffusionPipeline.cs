using DiffusionPeft.Diffusion.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>One call of the text-to-image pipeline. Give either explicit <see cref="Latents"/> or one seed per image.</summary>
public sealed record PipelineCall
{
    public required IReadOnlyList<string> Prompts { get; init; }
    /// <summary>One per prompt; null or "" means the empty negative prompt.</summary>
    public IReadOnlyList<string>? NegativePrompts { get; init; }
    public int Width { get; init; } = 512;
    public int Height { get; init; } = 512;
    public int Steps { get; init; } = 30;
    public double GuidanceScale { get; init; } = 7.5;
    /// <summary>diffusers' guidance_rescale φ (0: off): the guided prediction's std pulled back toward the conditional one's.</summary>
    public double GuidanceRescale { get; init; }
    /// <summary>Guidance only at timesteps in [Low, High] (training timesteps, 0–999); the conditional prediction alone elsewhere.</summary>
    public GuidanceInterval Interval { get; init; } = GuidanceInterval.Always;
    public double Eta { get; init; }
    public int ClipSkip { get; init; }
    /// <summary>Initial latents [B, C, H/f, W/f] (unit normal; scaled by the scheduler's init sigma here).</summary>
    public Tensor? Latents { get; init; }
    /// <summary>Image k's latents and sampler noise come from its own generator seeded with Seeds[k].</summary>
    public IReadOnlyList<long>? Seeds { get; init; }
    /// <summary>Overrides the per-image generators for sampler noise (e.g. replaying recorded noise).</summary>
    public NoiseSource? Noise { get; init; }
}

/// <summary>Hooks for tests and progress: the prompt embeddings and every denoising step's tensors.</summary>
public sealed class PipelineObserver
{
    public Action<Tensor, Tensor>? PromptEmbeds { get; init; }            // (cond, uncond)
    public Action<int, double, Tensor, Tensor, Tensor>? Step { get; init; } // (i, t, unet input, unet output, latents after)
    public Action<int, int>? Progress { get; init; }                       // (steps done, total)
}

/// <summary>Images NHWC float32 in [0, 1] on the CPU, and the final latents.</summary>
public sealed record PipelineResult(Tensor Images, Tensor Latents) : IDisposable
{
    public void Dispose() { Images.Dispose(); Latents.Dispose(); }
}

/// <summary>
/// diffusers' StableDiffusionPipeline: prompt → CLIP embeddings (optionally clip-skipped) → classifier-free guidance
/// with the unconditional half first in one batched UNet call → scheduler steps → VAE decode of latents / scaling_factor.
/// Runs under inference mode with a dispose scope per step, so memory stays flat over any number of calls.
/// </summary>
public sealed class StableDiffusionPipeline(StableDiffusionModel model, IScheduler scheduler)
{
    public StableDiffusionModel Model { get; } = model;
    public IScheduler Scheduler { get; } = scheduler;

    /// <summary>Receives warnings (e.g. prompts truncated to the tokenizer's 77 tokens).</summary>
    public Action<string>? Warn { get; init; }

    public PipelineResult Run(PipelineCall call, PipelineObserver? observer = null)
    {
        int batch = call.Prompts.Count;
        if (batch == 0) throw new ArgumentException("no prompts given.");
        if (call.Width % 8 != 0 || call.Height % 8 != 0 || call.Width <= 0 || call.Height <= 0)
            throw new ArgumentException($"width and height must be positive multiples of 8 (got {call.Width}x{call.Height}).");
        if (call.NegativePrompts is { } neg && neg.Count != batch)
            throw new ArgumentException($"{neg.Count} negative prompts for {batch} prompts.");
        if (call.Latents is null && (call.Seeds is null || call.Seeds.Count != batch))
            throw new ArgumentException("give explicit latents or one seed per prompt.");

        using var inference = inference_mode();
        using var outer = NewDisposeScope();
        var device = Model.Device;
        bool guided = call.GuidanceScale > 1.0;

        var cond = EncodePrompts(call.Prompts, call.ClipSkip);
        Tensor? uncond = null;
        if (guided)
        {
            uncond = EncodePrompts(call.NegativePrompts ?? Enumerable.Repeat("", batch).ToList(), call.ClipSkip);
            observer?.PromptEmbeds?.Invoke(cond, uncond);
        }
        else observer?.PromptEmbeds?.Invoke(cond, cond);
        var context = guided ? cat([uncond!, cond], 0) : cond;

        int f = Model.VaeScaleFactor;
        long[] latentShape = [batch, Model.Unet.Config.InChannels, call.Height / f, call.Width / f];
        using var streams = call.Seeds is null ? null : new PerImageNoise(call.Seeds);
        Tensor latents = call.Latents is { } given
            ? CheckShape(given, latentShape).to(ScalarType.Float32, device)
            : streams!.Next(latentShape, ScalarType.Float32, device);

        Scheduler.SetTimesteps(call.Steps);
        latents = latents * Scheduler.InitNoiseSigma;
        // Explicit latents without seeds: a fixed generator for whatever noise a stochastic sampler draws.
        using var fallback = call.Noise is null && streams is null ? new SeededNoiseSource(0) : null;
        var noise = call.Noise ?? (NoiseSource?)streams ?? fallback!;
        if (Scheduler is DdimScheduler ddim) ddim.Eta = call.Eta;

        var timesteps = Scheduler.TimestepValues();
        for (int i = 0; i < timesteps.Length; i++)
        {
            using var step = NewDisposeScope();
            double t = timesteps[i];
            var input = guided ? cat([latents, latents], 0) : latents;
            input = Scheduler.ScaleModelInput(input, t);
            var tTensor = Scheduler.Timesteps[i].to(device);
            var output = Model.Unet.forward(input.to_type(Model.DType), tTensor, context).to_type(ScalarType.Float32);
            Tensor eps = output;
            if (guided)
            {
                var parts = output.chunk(2, 0);
                eps = call.Interval.Contains(t) ? Guide(parts[0], parts[1], call.GuidanceScale, call.GuidanceRescale) : parts[1];
            }
            var next = Scheduler.Step(eps, t, latents, noise);
            observer?.Step?.Invoke(i, t, input, output, next);
            latents = next.MoveToOuterDisposeScope();
            observer?.Progress?.Invoke(i + 1, timesteps.Length);
        }

        var images = Decode(latents);
        return new PipelineResult(images.MoveToOuterDisposeScope(), latents.cpu().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Classifier-free guidance, uncond + w · (cond − uncond), with diffusers' rescale_noise_cfg when φ > 0 (Lin et al.
    /// 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", §3.4): at high w the guided prediction's
    /// per-image std grows far past the conditional one's, which over-exposes images on zero-terminal-SNR / v-prediction
    /// models; the rescaled prediction is φ · guided · std(cond)/std(guided) + (1 − φ) · guided.
    /// </summary>
    public static Tensor Guide(Tensor uncond, Tensor cond, double scale, double rescale)
    {
        var guided = uncond + scale * (cond - uncond);
        if (rescale <= 0) return guided;
        long[] dims = Enumerable.Range(1, (int)cond.dim() - 1).Select(d => (long)d).ToArray();
        var rescaled = guided * (cond.std(dims, keepdim: true) / guided.std(dims, keepdim: true));
        return rescale * rescaled + (1 - rescale) * guided;
    }

    /// <summary>Token ids [B, 77] → embeddings [B, 77, D] in the model dtype; warns about truncated prompts.</summary>
    public Tensor EncodePrompts(IReadOnlyList<string> prompts, int clipSkip)
    {
        var ids = new long[prompts.Count, Model.Tokenizer.MaxLength];
        for (int b = 0; b < prompts.Count; b++)
        {
            var tokens = Model.Tokenizer.EncodeForModel(prompts[b] ?? "");
            if (tokens.Truncated)
                Warn?.Invoke($"prompt truncated to {Model.Tokenizer.MaxLength} tokens; this part was cut: \"{tokens.TruncatedText}\"");
            for (int j = 0; j < tokens.InputIds.Length; j++) ids[b, j] = tokens.InputIds[j];
        }
        using var idTensor = tensor(ids, device: Model.Device);
        return Model.TextEncoder.EncodePrompt(idTensor, clipSkip);
    }

    /// <summary>clamp(vae.decode(latents / scaling_factor) / 2 + 0.5, 0, 1) as NHWC float32 on the CPU.</summary>
    public Tensor Decode(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var z = (latents / Model.Vae.Config.ScalingFactor).to_type(Model.DType);
        var image = Model.Vae.Decode(z).to_type(ScalarType.Float32);
        return (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous().cpu().MoveToOuterDisposeScope();
    }

    private static Tensor CheckShape(Tensor t, long[] shape) =>
        t.shape.SequenceEqual(shape) ? t : throw new ArgumentException($"latents have shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", shape)}].");
}
