using System.CommandLine;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Cli.Commands;

/// <summary>`dpeft generate`: batches of images from a prompt or a prompt file, resumable and shardable.</summary>
public static class GenerateCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string?>("--model") { Description = "A diffusers folder or a single .safetensors checkpoint. Without it (or \"embedded\"): the toy-world model shipped with dpeft; \"embedded-untrained\": a tiny random model of the same structure." };
        var configsFrom = new Option<string?>("--configs-from") { Description = "For a single-file checkpoint: a diffusers folder whose configs, scheduler and tokenizer to use." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "For a single-file checkpoint: a tokenizer folder (vocab.json, merges.txt)." };
        var variant = new Option<string?>("--variant") { Description = "A diffusers weight variant, e.g. fp16." };
        var prompt = new Option<string?>("--prompt") { Description = "One prompt." };
        var prompts = new Option<string?>("--prompts") { Description = "A prompt file: one prompt a line, or JSON Lines with per-line overrides." };
        var negative = new Option<string>("--negative") { Description = "Negative prompt.", DefaultValueFactory = _ => "" };
        var n = new Option<int>("--n") { Description = "Images per prompt.", DefaultValueFactory = _ => 1 };
        var seed = new Option<long>("--seed") { Description = "Image k of a prompt uses seed + k.", DefaultValueFactory = _ => 0 };
        var steps = new Option<int>("--steps") { Description = "Sampling steps.", DefaultValueFactory = _ => 30 };
        var sampler = new Option<string>("--sampler") { Description = "default (the model's scheduler), ddim, pndm, lms, euler, euler_a, dpm++2m, dpm++2m_karras, ddpm.", DefaultValueFactory = _ => "default" };
        var guidance = GuidanceOptions.Create();
        var width = new Option<int?>("--width") { Description = "Image width (multiple of 8; default: the model's native size)." };
        var height = new Option<int?>("--height") { Description = "Image height (multiple of 8; default: the model's native size)." };
        var clipSkip = new Option<int>("--clip-skip") { Description = "Use the text encoder's k-th layer from the end (0: last).", DefaultValueFactory = _ => 0 };
        var eta = new Option<double>("--eta") { Description = "DDIM eta.", DefaultValueFactory = _ => 0.0 };
        var batch = new Option<int>("--batch") { Description = "Images per forward pass.", DefaultValueFactory = _ => 1 };
        var outDir = new Option<string>("--out") { Description = "Output folder.", DefaultValueFactory = _ => "out" };
        var device = new Option<string>("--device") { Description = "cpu or cuda.", DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = "auto, fp32 or bf16 (auto: bf16 on a GPU or a CPU with AVX512-BF16/AMX, else fp32).", DefaultValueFactory = _ => TorchOptions.AutoDType };
        var adapter = new Option<string[]>("--adapter") { Description = "FILE[:scale], repeatable.", DefaultValueFactory = _ => [] };
        var shard = new Option<string?>("--shard") { Description = "K/N: make only this machine's share of the images." };
        var quiet = new Option<bool>("--quiet") { Description = "No progress bar: a log line per batch, and one every 5 s inside a long batch." };

        var command = new Command("generate", "Generate images from prompts; reruns skip images already written.")
        {
            model, configsFrom, tokenizer, variant, prompt, prompts, negative, n, seed, steps, sampler, width, height, clipSkip, eta, batch, outDir, device, dtype, adapter, shard, quiet,
        };
        guidance.AddTo(command);
        command.SetAction(r =>
        {
            var job = new GenerateJob
            {
                Model = r.GetValue(model),
                ConfigsFrom = r.GetValue(configsFrom),
                Tokenizer = r.GetValue(tokenizer),
                Variant = r.GetValue(variant),
                PromptFile = r.GetValue(prompts),
                Defaults = new GenerationOptions
                {
                    Prompt = r.GetValue(prompt) ?? "",
                    NegativePrompt = r.GetValue(negative)!,
                    Count = r.GetValue(n),
                    Seed = r.GetValue(seed),
                    Steps = r.GetValue(steps),
                    Sampler = r.GetValue(sampler)!,
                    GuidanceRescale = guidance.RescaleOf(r),
                    GuidanceInterval = guidance.IntervalOf(r),
                    ClipSkip = r.GetValue(clipSkip),
                    Eta = r.GetValue(eta),
                    BatchSize = r.GetValue(batch),
                    Adapters = r.GetValue(adapter)!.Select(AdapterSpec.Parse).ToList(),
                },
                Width = r.GetValue(width),
                Height = r.GetValue(height),
                GuidanceScale = guidance.ScaleOf(r),
                OutputDir = r.GetValue(outDir)!,
                Device = r.GetValue(device)!,
                DType = r.GetValue(dtype)!,
                Shard = Shard.Parse(r.GetValue(shard)),
                Quiet = r.GetValue(quiet),
            };
            return GenerateRunner.Run(job, output, error);
        });
        return command;
    }
}

public sealed record GenerateJob
{
    public string? Model { get; init; }
    public string? ConfigsFrom { get; init; }
    public string? Tokenizer { get; init; }
    public string? Variant { get; init; }
    public string? PromptFile { get; init; }
    public required GenerationOptions Defaults { get; init; }
    public int? Width { get; init; }
    public int? Height { get; init; }
    /// <summary>--cfg, or null: the model's own default (prompt-file lines may still set theirs).</summary>
    public double? GuidanceScale { get; init; }
    public required string OutputDir { get; init; }
    public string Device { get; init; } = "cpu";
    public string DType { get; init; } = TorchOptions.AutoDType;
    public Shard Shard { get; init; } = Shard.All;
    public bool Quiet { get; init; }
}
