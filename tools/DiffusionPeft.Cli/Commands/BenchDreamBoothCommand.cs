using DiffusionPeft.Diffusion.Loading;
using System.CommandLine;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.Pipelines;
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
        var cfg = new Option<double>("--cfg") { DefaultValueFactory = _ => 7.5 };
        var size = new Option<int?>("--size") { Description = "Image size (default: the model's native size)." };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 4 };
        var label = new Option<string>("--label") { Description = "Names the run in reports.", DefaultValueFactory = _ => "bench" };
        var shard = new Option<string?>("--shard") { Description = "K/N: generate only this machine's subjects." };
        var scoreOnly = new Option<bool>("--score-only") { Description = "Skip generation; score what exists." };
        var device = new Option<string>("--device") { DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = "auto, fp32 or bf16 (auto: bf16 on a GPU or a CPU with AVX512-BF16/AMX, else fp32).", DefaultValueFactory = _ => TorchOptions.AutoDType };
        var quiet = new Option<bool>("--quiet");
        var metricModels = MetricModelOptions.Create();
        foreach (var o in new Option[] { metricModels.Dino, metricModels.ClipVision, metricModels.ClipText, metricModels.Tokenizer }) o.Required = false;

        var command = new Command("bench-dreambooth", "Generate the DreamBooth protocol's images (4 per prompt per subject, fixed seeds) with per-subject adapters and score them.")
        {
            model, configsFrom, adapters, scale, subjects, subject, real, outDir, identifier, n, seed, steps, sampler, cfg, size, batch, label, shard, scoreOnly, device, dtype, quiet,
        };
        metricModels.AddTo(command);
        command.SetAction(r =>
        {
            var subjectsPath = r.GetValue(subjects) ?? DreamBoothProtocol.FindPromptsDir();
            var protocol = LoadProtocol(subjectsPath);
            var only = r.GetValue(subject)!;
            var chosen = protocol.Subjects.Where(s => only.Length == 0 || only.Contains(s.Folder)).ToList();
            if (chosen.Count == 0) throw new ArgumentException($"no subject of {subjectsPath} matches --subject {string.Join(", ", only)}.");
            var sh = Shard.Parse(r.GetValue(shard));
            var o = r.GetValue(outDir)!;
            var generatedRoot = Path.Combine(o, "generated");

            if (!r.GetValue(scoreOnly))
            {
                var adapterDir = r.GetValue(adapters);
                var mine = chosen.Where((_, i) => sh.Owns(i)).ToList();
                var specsBySubject = mine.ToDictionary(s => s.Folder, s => adapterDir is null ? [] : new List<AdapterSpec> { new(AdapterFor(adapterDir, s.Folder), r.GetValue(scale)) });
                var dev = TorchOptions.ParseDevice(r.GetValue(device)!);
                var dt = TorchOptions.ResolveDType(r.GetValue(dtype)!, dev, m => error.WriteLine($"warning: {m}"));
                using var sd = r.GetValue(model) is { } m ? StableDiffusionLoader.Load(m, dt, dev, configsFrom: r.GetValue(configsFrom)) : EmbeddedDefaultModel.Create(dev, dt);
                if (sd.IsEmbeddedDefault) error.WriteLine("note: no --model: using the embedded tiny UNTRAINED model (a smoke test of the protocol, not a benchmark).");
                int px = r.GetValue(size) ?? sd.NativeResolution;
                foreach (var s in mine)
                {
                    var prompts = protocol.PromptsFor(s, r.GetValue(identifier)!).Select(p => new GenerationOptions
                    {
                        Prompt = p, Count = r.GetValue(n), Seed = r.GetValue(seed), Steps = r.GetValue(steps), Sampler = r.GetValue(sampler)!,
                        GuidanceScale = r.GetValue(cfg), Width = px, Height = px, BatchSize = r.GetValue(batch), Adapters = specsBySubject[s.Folder],
                    }).ToList();
                    foreach (var p in prompts) p.Validate($"subject {s.Folder}");
                    var plan = new GenerationPlan(prompts, Path.Combine(generatedRoot, s.Folder));
                    error.WriteLine($"{s.Folder}: {plan.Pending(Shard.All).Count()} of {plan.All.Count} images to generate");
                    var progress = new GenerateRunner.CliGenerationProgress(new ProgressLine(error, "images", r.GetValue(quiet)));
                    new BatchGenerator(sd) { ApplyAdapters = specs => ActiveAdapters.Apply(sd, specs, progress.Warning) }.Run(plan, Shard.All, progress);
                }
                if (sh.Count > 1)
                {
                    output.WriteLine($"shard {sh}: generated {mine.Count} subjects under {Path.GetFullPath(generatedRoot)}; score them all with --score-only once every shard is done.");
                    return 0;
                }
            }

            if (r.GetValue(real) is not { } realDir || r.GetValue(metricModels.Dino) is null)
            {
                output.WriteLine($"images are in {Path.GetFullPath(generatedRoot)}; pass --real and the metric models (--dino, --clip-vision, --clip-text, --clip-tokenizer) to score them.");
                return 0;
            }
            var report = FidelityEvaluation.Run(subjectsPath, generatedRoot, realDir, metricModels.Resolve(r), new FidelityOptions
            {
                Label = r.GetValue(label)!, Identifier = r.GetValue(identifier)!, CacheDir = Path.Combine(o, ".embcache"),
                Subjects = chosen.Select(s => s.Folder).ToList(), Progress = new Progress<string>(m => error.WriteLine(m)),
            });
            ReportWriter.WriteAll(report, Path.Combine(o, "eval"));
            var all = report.Scores.Overall;
            output.WriteLine($"{report.Label}: DINO {all.Dino.Mean:F4}  CLIP-I {all.ClipI.Mean:F4}  CLIP-T {all.ClipT.Mean:F4}; report: {Path.GetFullPath(Path.Combine(o, "eval", "report.html"))}");
            return 0;
        });
        return command;
    }

    private static DreamBoothProtocol LoadProtocol(string subjects)
    {
        if (Directory.Exists(subjects)) return DreamBoothProtocol.Load(subjects);
        if (!File.Exists(subjects)) throw new FileNotFoundException($"--subjects {subjects}: not found.");
        var dir = Path.GetDirectoryName(Path.GetFullPath(subjects))!;
        var full = DreamBoothProtocol.Load(File.Exists(Path.Combine(dir, DreamBoothProtocol.ObjectPromptsFile)) ? dir : DreamBoothProtocol.FindPromptsDir());
        return new DreamBoothProtocol(DreamBoothProtocol.LoadSubjects(subjects), full.ObjectPrompts, full.LivePrompts);
    }

    private static string AdapterFor(string dir, string subject)
    {
        foreach (var candidate in new[] { Path.Combine(dir, subject, "adapter.safetensors"), Path.Combine(dir, subject + ".safetensors") })
            if (File.Exists(candidate)) return candidate;
        throw new FileNotFoundException($"--adapters {dir}: no adapter for subject '{subject}' ({subject}/adapter.safetensors or {subject}.safetensors).");
    }
}
