using System.Diagnostics;
using System.Text;
using DiffusionPeft.Adapters;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// Planted personalization through the real DreamBooth loop (DreamBoothRun.Train, the library entry point `dpeft train`
/// calls): a teacher = the model with a general rank-k ΔW* (chosen κ) added to every UNet attention
/// projection; its samples are the instance images; each method trains an adapter on them from the base model. Measured
/// against the teacher: noise-prediction error on held-out teacher latents (instance prompt and an unseen prompt), the
/// distance of same-seed samples, ‖ΔW − ΔW*‖/‖ΔW*‖ and cos(ΔW, ΔW*) per layer kind, and the objective on the training
/// data itself (with fixed noise) next to the teacher's and the base's.
/// </summary>
public static class PlantedDiffusionExperiment
{
    public sealed record Method(string Name, AdapterMethod Kind, int Rank, SdsBasis Basis = SdsBasis.Qr, double InitScale = 1, int Ramp = 100);

    public static IReadOnlyList<Method> Methods { get; } =
    [
        new("LoRA r4", AdapterMethod.Lora, 4),
        new("DoRA r4", AdapterMethod.Dora, 4),
        new("SingLoRA r4 (equal rank)", AdapterMethod.SingLora, 4, InitScale: 0.1),
        new("SingLoRA r8 (≈ LoRA's params)", AdapterMethod.SingLora, 8, InitScale: 0.1),
        new("SingLoRA r8 init×1 (library default)", AdapterMethod.SingLora, 8),
        new("SDS-LoRA QR r4", AdapterMethod.SdsLora, 4, SdsBasis.Qr),
        new("SDS-LoRA polar r4", AdapterMethod.SdsLora, 4, SdsBasis.Polar),
    ];

    public static readonly string[] Kinds = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"];

    private sealed record Job(Method Method, double Lr, int World, bool Tuning);

    private sealed record Outcome(Job Job, long Parameters, double TrainSeconds, double LastLoss, double EpsInstance, double EpsHeldOut,
                                  double SampleDistance, double DataFit, IReadOnlyDictionary<string, (double RelErr, double Cos, double RelErrOnInputs)> ByKind);

    public static ExperimentSection Run(ClaimsConfig c, string outDir, string modelPath, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        var s = c.Planted;

        string tmp = Path.Combine(Path.GetTempPath(), $"dpeft-planted-{Environment.ProcessId}");
        var outcomes = new List<Outcome>();
        var worlds = new List<string>();
        var alignments = new List<IReadOnlyDictionary<string, double>>();
        var chosen = new Dictionary<Method, double>();
        int plantedLayers = 0;
        try
        {
            foreach (var (seed, tuning) in s.TuningWorlds.Select(w => (w, true)).Concat(s.ReportWorlds.Select(w => (w, false))))
            {
                var wClock = Stopwatch.StartNew();
                using var world = PlantedWorld.Create(modelPath, seed, Path.Combine(tmp, $"world-{seed}"), s);
                var diag = WorldDiagnostics(world);
                plantedLayers = world.Planted.Count;
                worlds.Add(diag);
                if (!tuning) alignments.Add(world.GradientAlignment);
                log.WriteLine($"[planted] world {seed}: built in {wClock.Elapsed.TotalSeconds:0}s; {diag}");
                var jobs = tuning
                    ? (from m in Methods from lr in s.LearningRates select new Job(m, lr, seed, true)).ToList()
                    : Methods.Select(m => new Job(m, chosen[m], seed, false)).ToList();
                // One run at a time (one torch thread, as everywhere here): the adapter session seeds torch's global generator, so parallel runs would race.
                var done = RunQueue.Run(jobs, 1, j => Train(j, world, modelPath, Path.Combine(tmp, $"world-{seed}", $"{Slug(j.Method.Name)}-{j.Lr}"), s), log, $"planted world {seed}");
                outcomes.AddRange(done);
                if (tuning)
                    foreach (var m in Methods)
                        chosen[m] = done.Where(o => o.Job.Method == m).OrderBy(o => double.IsFinite(o.EpsInstance) ? o.EpsInstance : double.MaxValue).First().Job.Lr;
            }
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        }

        var report = outcomes.Where(o => !o.Job.Tuning).ToList();
        Interval Ci(Method m, Func<Outcome, double> f) => ConfidenceIntervals.MeanT(report.Where(o => o.Job.Method == m).Select(f).ToList());

        var md = new StringBuilder();
        md.AppendLine($"Model: {ModelDescription(modelPath)}. Teacher: ΔW* general, rank {s.PlantedRank}, κ = {s.PlantedKappa}, input directions {(s.Span == PlantedSpan.Inputs ? "the k leading directions of each layer's inputs on the instance prompt (a change the data can reveal)" : "random")}, " +
                      $"σ_max(ΔW*) = {s.RelativeScale}·σ_max(W0), on all {plantedLayers} UNet attention projections (attn1/attn2 × to_q, to_k, to_v, to_out.0). Instance images: {s.InstanceImages} teacher samples ({PlantedWorld.Resolution}×{PlantedWorld.Resolution}, {PlantedWorld.SampleSteps} PNDM steps, CFG 7.5, prompt \"{s.Prompt}\"; unseen prompt \"{s.HeldOutPrompt}\"). " +
                      $"Training: DreamBoothRun.Train (the library entry point of `dpeft train`; AdamW, weight decay 0.01, clip 1, constant LR), {s.Steps} steps, batch {s.Batch}, α = r, adapter seed = world seed; SingLoRA ramp T = {Methods.First(m => m.Kind == AdapterMethod.SingLora).Ramp} steps, so u ends at {Math.Min(1.0, (double)s.Steps / Methods.First(m => m.Kind == AdapterMethod.SingLora).Ramp):0.##}. " +
                      $"LR per method from {{{string.Join(", ", s.LearningRates.Select(Format.Lr))}}}: lowest noise-prediction error on tuning world(s) {{{string.Join(", ", s.TuningWorlds)}}}; reported worlds {{{string.Join(", ", s.ReportWorlds)}}} (each: its own ΔW*, images, eval data). " +
                      "Means [95% t-interval] over worlds. ε error = mean ‖ε_student − ε_teacher‖² / mean ‖ε_base − ε_teacher‖² on held-out teacher latents (1 = no closer than the base; ε stands for the UNet's output, which is v for a v-prediction model); " +
                      "sample distance = pixel MSE to the teacher's same-seed samples / the base's; data fit = the training objective on the training images (fixed noise; its target ε or v as the model predicts), absolute.");
        md.AppendLine();
        md.AppendLine("| method | params | LR | ε error (instance prompt) | ε error (unseen prompt) | sample distance | data fit | ‖ΔW−ΔW*‖/‖ΔW*‖ (all layers) | on the inputs: ‖(ΔW−ΔW*)x‖/‖ΔW*x‖ (all) | cos(ΔW, ΔW*) (all) | train s |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var m in Methods)
        {
            var first = report.First(o => o.Job.Method == m);
            md.AppendLine($"| {m.Name} | {first.Parameters:N0} | {Format.Lr(chosen[m])} | {Format.NumInterval(Ci(m, o => o.EpsInstance), "0.000")} | {Format.NumInterval(Ci(m, o => o.EpsHeldOut), "0.000")} | " +
                          $"{Format.NumInterval(Ci(m, o => o.SampleDistance), "0.000")} | {Format.NumInterval(Ci(m, o => o.DataFit), "0.0000")} | {Format.NumInterval(Ci(m, o => o.ByKind["all"].RelErr), "0.000")} | {Format.NumInterval(Ci(m, o => o.ByKind["all"].RelErrOnInputs), "0.000")} | " +
                          $"{Format.NumInterval(Ci(m, o => o.ByKind["all"].Cos), "0.000")} | {Format.Num(Ci(m, o => o.TrainSeconds).Estimate, "0")} |");
        }
        md.AppendLine();
        void PerKindTable(string caption, Func<(double RelErr, double Cos, double RelErrOnInputs), double> value)
        {
            md.AppendLine(caption);
            md.AppendLine();
            md.AppendLine("| method | " + string.Join(" | ", Kinds) + " |");
            md.AppendLine("|---|" + string.Concat(Kinds.Select(_ => "---:|")));
            foreach (var m in Methods)
                md.AppendLine($"| {m.Name} | " + string.Join(" | ", Kinds.Select(k => Format.NumInterval(Ci(m, o => value(o.ByKind[k])), "0.000"))) + " |");
            md.AppendLine();
        }
        PerKindTable("Per layer kind, ‖ΔW − ΔW*‖_F / ‖ΔW*‖_F (summed over the kind's layers; mean [95% t-interval] over worlds):", e => e.RelErr);
        PerKindTable("On the layers' inputs, ‖(ΔW − ΔW*)·C^½‖_F / ‖ΔW*·C^½‖_F with C = E[x·xᵀ] on the instance prompt (the error a layer's output shows; mean [95% t-interval] over worlds):", e => e.RelErrOnInputs);
        PerKindTable("cos(ΔW, ΔW*) per layer kind:", e => e.Cos);
        md.AppendLine("Does the objective point at the teacher? cos(−dL/dW, ΔW*) at the base weights, on the training data (fixed noise), per layer kind " +
                      "(mean [95% t-interval] over reported worlds; a random direction in these 32×32 and 48→32 weight spaces has |cos| ≈ 0.03 per layer):");
        md.AppendLine();
        md.AppendLine("| " + string.Join(" | ", Kinds.Append("all")) + " |");
        md.AppendLine("|" + string.Concat(Kinds.Append("all").Select(_ => "---:|")));
        md.AppendLine("| " + string.Join(" | ", Kinds.Append("all").Select(k => Format.NumInterval(ConfidenceIntervals.MeanT(alignments.Select(a => a[k]).ToList()), "0.000"))) + " |");
        md.AppendLine();
        md.AppendLine("Worlds (teacher vs base before training): " + string.Join("; ", worlds) + ".");
        md.AppendLine();
        md.AppendLine("![planted personalization](planted.png)");
        md.AppendLine();

        var panels = new List<ScottPlot.Plot>
        {
            Charts.Panel("ε error vs teacher (instance prompt)", Methods.Select((m, i) => new Charts.Series(m.Name, [(i + 1.0, Ci(m, o => o.EpsInstance))])).ToList(),
                "method", "relative ε error (1 = base)", logX: false, logY: false, hLine: 1),
            Charts.Panel("‖ΔW − ΔW*‖/‖ΔW*‖ per layer kind", Methods.Select(m => new Charts.Series(m.Name,
                Kinds.Select((k, i) => (i + 1.0, Ci(m, o => o.ByKind[k].RelErr))).ToList())).ToList(),
                "layer kind: " + string.Join(", ", Kinds.Select((k, i) => $"{i + 1} {k}")), "relative error (1 = ΔW = 0)", logX: false, logY: false, hLine: 1),
        };
        Charts.Grid(Path.Combine(outDir, "planted.png"), $"Planted rank-{s.PlantedRank} ΔW* (κ {s.PlantedKappa}) recovered through the DreamBooth loop (worlds {string.Join(",", s.ReportWorlds)})", panels, 2);

        var json = new
        {
            design = s, methods = Methods,
            gradientAlignment = Kinds.Append("all").Select(k => new { kind = k, cos = Format.JsonInterval(ConfidenceIntervals.MeanT(alignments.Select(a => a[k]).ToList())) }), chosenLearningRates = chosen.Select(kv => new { method = kv.Key.Name, lr = kv.Value }), worlds,
            summary = Methods.Select(m => new
            {
                method = m.Name, lr = chosen[m], epsInstance = Format.JsonInterval(Ci(m, o => o.EpsInstance)), epsHeldOut = Format.JsonInterval(Ci(m, o => o.EpsHeldOut)),
                sampleDistance = Format.JsonInterval(Ci(m, o => o.SampleDistance)), dataFit = Format.JsonInterval(Ci(m, o => o.DataFit)),
                byKind = Kinds.Append("all").Select(k => new { kind = k, relErr = Format.JsonInterval(Ci(m, o => o.ByKind[k].RelErr)), relErrOnInputs = Format.JsonInterval(Ci(m, o => o.ByKind[k].RelErrOnInputs)), cos = Format.JsonInterval(Ci(m, o => o.ByKind[k].Cos)) }),
            }),
            runs = outcomes.Select(o => new
            {
                method = o.Job.Method.Name, lr = o.Job.Lr, world = o.Job.World, tuning = o.Job.Tuning, o.Parameters, trainSeconds = Math.Round(o.TrainSeconds, 1),
                lastLoss = Format.Json(o.LastLoss), epsInstance = Format.Json(o.EpsInstance), epsHeldOut = Format.Json(o.EpsHeldOut), sampleDistance = Format.Json(o.SampleDistance),
                dataFit = Format.Json(o.DataFit), byKind = o.ByKind.Select(kv => new { kind = kv.Key, relErr = Format.Json(kv.Value.RelErr), relErrOnInputs = Format.Json(kv.Value.RelErrOnInputs), cos = Format.Json(kv.Value.Cos) }),
            }),
        };
        return new ExperimentSection("planted", "Planted personalization through the DreamBooth loop", md.ToString(), json, clock.Elapsed.TotalSeconds);
    }

    private static string Slug(string name) => new(name.ToLowerInvariant().Select(ch => char.IsLetterOrDigit(ch) ? ch : '-').ToArray());

    private static string WorldDiagnostics(PlantedWorld w)
    {
        var (_, _, _, _, teacherEps, baseEps) = w.NoisePrediction[0];
        double rel = PlantedWorld.Mse(baseEps, teacherEps) / teacherEps.square().mean().ToDouble();
        return $"world {w.Seed}: ‖ε_base − ε_teacher‖²/‖ε_teacher‖² = {Format.Sci(rel)}, data fit teacher {w.TeacherDataFit:0.0000} / base {w.BaseDataFit:0.0000}, " +
               $"cos(−∇W, ΔW*) at the base {w.GradientAlignment["all"]:0.000}";
    }

    private static Outcome Train(Job j, PlantedWorld world, string modelPath, string runDir, PlantedSettings s)
    {
        var clock = Stopwatch.StartNew();
        var config = new TrainConfig
        {
            Model = modelPath, Images = world.ImagesDir, Prompt = world.Prompt, Out = runDir,
            Method = j.Method.Kind, Rank = j.Method.Rank, Alpha = j.Method.Rank, Steps = s.Steps, Lr = j.Lr, Batch = s.Batch,
            Resolution = PlantedWorld.Resolution, Seed = j.World, CheckpointEvery = 0, Keep = 1, PlotEvery = 1_000_000,
            SdsBasis = j.Method.Basis, SingLoraInitScale = j.Method.InitScale, SingLoraRampSteps = j.Method.Ramp,
        };
        // The library's one entry point for a DreamBooth run (what `dpeft train` calls), on a model we keep for evaluation.
        var run = new DreamBoothRun(config, progress: NullTrainingProgress.Instance);
        run.PrepareData();
        using var model = StableDiffusionLoader.Load(modelPath);
        double lastLoss = run.Train(model).LastLoss ?? double.NaN;
        var adapters = run.Adapters!;
        double seconds = clock.Elapsed.TotalSeconds;

        using var scope = NewDisposeScope();
        var layers = adapters.Reports[0].Layers;
        long parameters = layers.Sum(l => l.TrainableParameters);
        var byKind = new Dictionary<string, (double Err, double Dot, double Star, double Delta, double ErrIn, double StarIn)>();
        using (no_grad())
            foreach (var l in layers)
            {
                var delta = l.Layer.DeltaWeight().to_type(ScalarType.Float32).cpu();
                var star = world.Planted[l.Path];
                double err = (delta - star).square().sum().ToDouble(), dot = (delta * star).sum().ToDouble();
                double ns = star.square().sum().ToDouble(), nd = delta.square().sum().ToDouble();
                // On the layer's inputs: ‖E·C^½‖² = tr(E·C·Eᵀ), E = ΔW − ΔW*, C = E[x·xᵀ] on the instance prompt.
                var c = world.InputMoments[l.Path].to_type(ScalarType.Float32);
                var e = delta - star;
                double errIn = (e.mm(c) * e).sum().ToDouble(), starIn = (star.mm(c) * star).sum().ToDouble();
                foreach (var key in new[] { l.Kind, "all" })
                {
                    var acc = byKind.GetValueOrDefault(key);
                    byKind[key] = (acc.Err + err, acc.Dot + dot, acc.Star + ns, acc.Delta + nd, acc.ErrIn + errIn, acc.StarIn + starIn);
                }
            }
        var kinds = byKind.ToDictionary(kv => kv.Key, kv => (Math.Sqrt(kv.Value.Err / kv.Value.Star), kv.Value.Dot / Math.Sqrt(kv.Value.Star * kv.Value.Delta + 1e-300),
                                                              Math.Sqrt(kv.Value.ErrIn / kv.Value.StarIn)));

        double EpsError(int i)
        {
            var (_, noisy, t, emb, teacherEps, baseEps) = world.NoisePrediction[i];
            return PlantedWorld.Mse(PlantedWorld.Eps(model, noisy, t, emb), teacherEps) / PlantedWorld.Mse(baseEps, teacherEps);
        }
        double sample;
        using (var r = PlantedWorld.Sample(model, world.Prompt, world.SampleSeeds))
            sample = PlantedWorld.Mse(r.Images, world.TeacherImages) / PlantedWorld.Mse(world.BaseImages, world.TeacherImages);
        var (dNoisy, dT, dEmb, dTarget) = world.DataFit;
        double fit = PlantedWorld.Mse(PlantedWorld.Eps(model, dNoisy, dT, dEmb), dTarget);
        return new Outcome(j, parameters, seconds, lastLoss, EpsError(0), EpsError(1), sample, fit, kinds);
    }

    private static string ModelDescription(string modelPath)
    {
        var unet = DiffusionPeft.Diffusion.Models.UNet2DConditionConfig.FromJson(
            DiffusionPeft.Diffusion.IO.ConfigJson.Parse(File.ReadAllText(Path.Combine(modelPath, "unet", "config.json")), "unet/config.json"));
        string what = modelPath.Contains("tiny_sd15") ? "the golden tiny SD 1.5, random weights"
                    : modelPath.Contains("toy-world") ? "the shipped toy-world model" : "a diffusers folder";
        return $"`{modelPath}` ({what}; UNet blocks [{string.Join(", ", unet.BlockOutChannels)}], cross-attention {string.Join("/", unet.CrossAttentionDim.Distinct())})";
    }
}
