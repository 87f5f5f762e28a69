using DiffusionPeft.Diffusion;
using System.CommandLine;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Metrics;

namespace DiffusionPeft.Cli.Commands;

/// <summary>
/// `dpeft bench-dreambooth`: the DreamBooth evaluation protocol end to end. For every subject: its 25 prompt templates
/// filled with the identifier and class noun, 4 images each from fixed seeds, with that subject's adapter; then DINO,
/// CLIP-I and CLIP-T against the real images. `--shard K/N` splits the subjects across machines (generation only);
/// a run without --shard (or with --score-only) scores everything that exists.
/// </summary>
public static class BenchDreamBoothCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string?>("--model") { Description = "Base model (diffusers folder or single file); default: the embedded tiny model." };
        var configsFrom = new Option<string?>("--configs-from") { Description = "For a single-file checkpoint: a diffusers folder with configs and tokenizer." };
        var adapters = new Option<string?>("--adapters") { Description = "Folder with one adapter per subject: DIR/<subject>/adapter.safetensors (dpeft train --subjects run folders) or DIR/<subject>.safetensors. Without it: the base model." };
        var scale = new Option<double>("--adapter-scale") { Description = "Adapter weight.", DefaultValueFactory = _ => 1.0 };
        var subjects = new Option<string?>("--subjects") { Description = "Subjects CSV (subject,class,kind) or a prompts folder (default: the repository's prompts/)." };
        var subject = new Option<string[]>("--subject") { Description = "Only these subjects (repeatable).", DefaultValueFactory = _ => [] };
        var real = new Option<string?>("--real") { Description = "Real images: DIR/<subject>/* (needed for scoring)." };
        var outDir = new Option<string>("--out") { Description = "OUT/generated/<subject>/..., OUT/eval/ reports.", DefaultValueFactory = _ => "bench-dreambooth" };
        var identifier = new Option<string>("--identifier") { Description = "The rare identifier the adapters were trained with.", DefaultValueFactory = _ => "sks" };
        var n = new Option<int>("--n") { Description = "Images per prompt (the protocol uses 4).", DefaultValueFactory = _ => 4 };
        var seed = new Option<long>("--seed") { Description = "Image k of every prompt uses seed + k.", DefaultValueFactory = _ => 0 };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 30 };
        var sampler = new Option<string>("--sampler") { DefaultValueFactory = _ => "dpm++2m_karras" };
        var cfg = new Option<double?>("--cfg") { Description = "Classifier-free guidance scale (default: the model's own, generation_config.json's; 7.5 without one)." };
        var size = new Option<int?>("--size") { Description = "Image size (default: the model's native size)." };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 4 };
        var label = new Option<string>("--label") { Description = "Names the run in reports.", DefaultValueFactory = _ => "bench" };
        var shard = new Option<string?>("--shard") { Description = "K/N: generate only this machine's subjects." };
        var scoreOnly = new Option<bool>("--score-only") { Description = "Skip generation; score what exists." };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = "auto, fp32 or bf16 (auto: bf16 on a GPU or a CPU with AVX512-BF16/AMX, else fp32).", DefaultValueFactory = _ => TorchOptions.AutoDType };
        var quiet = new Option<bool>("--quiet");
        var metricModels = MetricModelOptions.Create();

        var command = new Command("bench-dreambooth", "Generate the DreamBooth protocol's images (4 per prompt per subject, fixed seeds) with per-subject adapters and score them.")
        {
            model, configsFrom, adapters, scale, subjects, subject, real, outDir, identifier, n, seed, steps, sampler, cfg, size, batch, label, shard, scoreOnly, device, dtype, quiet,
        };
        metricModels.AddTo(command);
        command.SetAction(r => BenchDreamBoothRunner.Run(new BenchDreamBoothJob
        {
            Model = r.GetValue(model), ConfigsFrom = r.GetValue(configsFrom), Adapters = r.GetValue(adapters), AdapterScale = r.GetValue(scale),
            Subjects = r.GetValue(subjects), OnlySubjects = r.GetValue(subject)!, Real = r.GetValue(real), OutputDir = r.GetValue(outDir)!,
            Identifier = r.GetValue(identifier)!, ImagesPerPrompt = r.GetValue(n), Seed = r.GetValue(seed), Steps = r.GetValue(steps),
            Sampler = r.GetValue(sampler)!, GuidanceScale = r.GetValue(cfg), Size = r.GetValue(size), BatchSize = r.GetValue(batch),
            Label = r.GetValue(label)!, Shard = Shard.Parse(r.GetValue(shard)), ScoreOnly = r.GetValue(scoreOnly), Device = r.GetValue(device)!,
            DType = r.GetValue(dtype)!, Quiet = r.GetValue(quiet),
            Models = metricModels.TryResolve(r, error),
        }, output, error));
        return command;
    }
}
