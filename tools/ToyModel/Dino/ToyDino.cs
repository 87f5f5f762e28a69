using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Subjects;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel.Dino;

/// <summary>
/// The toy world's DINO: an image encoder trained self-supervised on training scenes (two views per scene,
/// <see cref="ViewContrastObjective"/>) with the project's <see cref="Trainer"/> (checkpoints, exact resume,
/// log.jsonl, loss.png). A stage folder: checkpoints/, log.jsonl, loss.png, model/ (config.json, toy_dino.safetensors),
/// done.json (its <see cref="StageReport"/>); a rerun of a finished stage returns the saved report.
/// </summary>
public static class ToyDino
{
    public const string DoneFile = "done.json", ModelFolder = "model", WeightsFile = "toy_dino.safetensors", ConfigFile = "config.json";

    /// <summary>Trains (or resumes, or finds done) the stage in <paramref name="outFolder"/>; null when cancelled (rerun to resume).</summary>
    public static StageReport? Train(string outFolder, World world, ToyDinoOptions options, ITrainingProgress? progress = null, CancellationToken cancellationToken = default)
    {
        var folder = Path.GetFullPath(outFolder);
        var done = Path.Combine(folder, DoneFile);
        if (File.Exists(done)) return JsonSerializer.Deserialize<StageReport>(File.ReadAllText(done))!;
        if (world.Seed != options.WorldSeed) throw new ArgumentException($"the world has seed {world.Seed}, the options say {options.WorldSeed}");
        progress ??= NullTrainingProgress.Instance;
        var device = TorchOptions.ParseDevice(options.Device);

        manual_seed(options.Seed + 5);
        using var network = new ToyDinoNetwork(options.Model);
        ModelPlacement.Place(network, ScalarType.Float32, device);
        var target = new ModuleTarget([("dino", network, options.Lr)], (_, _) => { });
        progress.Info($"toy DINO: {target.ParameterCount:N0} weights, {options.Steps} steps of {options.Batch} scenes × 2 views");
        var loop = new TrainingLoop
        {
            Steps = options.Steps, Lr = options.Lr, WeightDecay = 0.05, MaxGradNorm = 1.0, LrScheduler = LrScheduleKind.Cosine,
            LrWarmupSteps = Math.Min(50, options.Steps / 10), Seed = options.Seed + 5, CheckpointEvery = options.CheckpointEvery, Keep = 2,
            Resume = "latest", PlotEvery = 25,
        };
        var settings = JsonRunSettings.Of(new { stage = "dino", options.WorldSeed, options.Seed, options.Model, options.Steps, options.Batch, options.Lr,
            options.Temperature, options.Scenes, options.CompoundShare, options.Augmentation }, fileName: "stage.json");
        var objective = new ViewContrastObjective(network, world, options.Augmentation, options.Temperature, options.CompoundShare, options.Seed);
        TrainResult result;
        using (var trainer = new Trainer(loop, settings, folder, target, objective, new DataOrder(options.Scenes, options.Batch, loop.Seed), progress))
            result = trainer.Run(cancellationToken);
        if (result.Interrupted) return null;

        network.eval();
        var retrieval = SubjectInstanceTop1(network.encoder, world, device);
        Save(network, options.Model, Path.Combine(folder, ModelFolder));
        var report = StageLog.Report("dino", folder, result, new JsonObject
        {
            ["subject_instance_top1"] = Math.Round(retrieval, 4), ["chance"] = Math.Round(4.0 / 59, 4), ["parameters"] = target.ParameterCount,
            ["encoder_parameters"] = network.encoder.parameters().Sum(p => p.numel()),
        });
        AtomicFile.WriteAllText(done, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        return report;
    }

    /// <summary>The trained network of a stage's model folder (eval mode, CPU).</summary>
    public static ToyDinoNetwork Load(string modelFolder)
    {
        var config = ToyDinoConfig.Load(Path.Combine(modelFolder, ConfigFile));
        var network = new ToyDinoNetwork(config);
        using (var weights = SafetensorsFile.Open(Path.Combine(modelFolder, WeightsFile)))
            StateDictLoader.Load(network, weights);
        network.eval();
        return network;
    }

    public static void Save(ToyDinoNetwork network, ToyDinoConfig config, string modelFolder)
    {
        Directory.CreateDirectory(modelFolder);
        AtomicFile.WriteAllText(Path.Combine(modelFolder, ConfigFile), config.ToJsonString());
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(Path.Combine(modelFolder, WeightsFile), network.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu()),
            new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>
    /// Leave-one-out nearest neighbour over the subjects' instance images (12 × 5, centre 56 px, cosine): the share
    /// whose nearest other image shows the same subject (chance 4/59). The held-out subject images stay for the
    /// evaluators' sanity check.
    /// </summary>
    public static double SubjectInstanceTop1(ToyDinoEncoder encoder, World world, Device device)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var subjects = ToySubjects.All;
        var images = subjects.SelectMany(s => Enumerable.Range(0, 5).Select(i => SceneRenderer.Render(world.SubjectInstance(s, i)))).ToList();
        var x = ScenePixels.Unit(images);
        int margin = (64 - ToyDinoEncoder.InputSize) / 2;
        x = x.narrow(2, margin, ToyDinoEncoder.InputSize).narrow(3, margin, ToyDinoEncoder.InputSize).to(device);
        var e = nn.functional.normalize(encoder.call(x), dim: -1);
        var sim = e.matmul(e.t()).masked_fill(eye(images.Count, dtype: ScalarType.Bool, device: device), -2f);
        var nearest = sim.argmax(1).cpu().data<long>().ToArray();
        return Enumerable.Range(0, images.Count).Count(i => nearest[i] / 5 == i / 5) / (double)images.Count;
    }
}
