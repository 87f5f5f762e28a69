using System.Text.Json;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.Metrics;
using DiffusionPeft.ToyModel;
using DiffusionPeft.ToyWorld.Judge;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.Experiments.DreamBoothTable;

/// <summary>What one cell (arm × learning rate × subject × seed) measured.</summary>
public sealed record CellResult
{
    public required string Arm { get; init; }
    public required double Lr { get; init; }
    public required string Subject { get; init; }
    public required long Seed { get; init; }
    public long AdapterParameters { get; init; }
    public double? FinalLoss { get; init; }
    public required double Dino { get; init; }
    public required double ClipI { get; init; }
    public required double ClipT { get; init; }
    /// <summary>Held-out views among themselves (the ceiling).</summary>
    public required double RealDino { get; init; }
    public required double RealClipI { get; init; }
    /// <summary>Scene judge: share of images whose every graded attribute matches the prompt; and the shape (the subject's class) alone.</summary>
    public required double JudgeAll { get; init; }
    public double? JudgeShape { get; init; }
    public double? JudgeBackground { get; init; }
    public required double Seconds { get; init; }
}

/// <summary>
/// One cell of the table, end to end through the product's own code: `dpeft train`'s <see cref="DreamBoothRun"/> on the
/// subject's instance folder, generation of the toy protocol's prompts with fixed seeds (<see cref="BatchGenerator"/>),
/// toy DINO / CLIP-I / CLIP-T through <see cref="FidelityEvaluation"/> (what `dpeft eval` runs) and the scene judge.
/// A finished cell is a result.json; a killed one resumes (training from its checkpoint, generation from its images).
/// </summary>
public static class TableCell
{
    public const string ResultFile = "result.json";

    /// <summary>NaN is a value here (a metric with nothing to grade), written as "NaN".</summary>
    public static JsonSerializerOptions Json { get; } = new()
    {
        WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static CellResult Run(TableArm arm, double lr, ToySubject subject, long seed, TableConfig config, TableData data, string cellDir,
                                 StableDiffusionModel baseModel, FidelityModels evaluators, ITrainingProgress progress, CancellationToken cancel)
    {
        var resultPath = Path.Combine(cellDir, ResultFile);
        if (File.Exists(resultPath)) return JsonSerializer.Deserialize<CellResult>(File.ReadAllText(resultPath), Json)!;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long parameters = 0;
        double? loss = null;
        var specs = new List<AdapterSpec>();
        if (!arm.IsBase)
        {
            var train = new TrainConfig
            {
                Model = data.Model, Images = data.Instances(subject), Prompt = subject.InstancePrompt, Out = Path.Combine(cellDir, "run"),
                Method = arm.Method, Rank = arm.Rank, Alpha = arm.Rank, SdsBasis = arm.Basis, Steps = config.Steps, Lr = lr, Batch = config.Batch,
                Resolution = 64, Seed = seed, CheckpointEvery = Math.Max(50, config.Steps / 2), Keep = 1, Resume = "latest", PlotEvery = 50, DType = "fp32",
            };
            var run = new DreamBoothRun(train, progress: progress);
            run.PrepareData();
            var trained = run.Train(cancellationToken: cancel);
            if (trained.Interrupted) throw new OperationCanceledException();
            loss = trained.LastLoss;
            var adapter = Path.Combine(train.Out, AdapterSession.FinalFile);
            parameters = SafetensorsFile.ReadHeader(adapter).Entries.Values.Sum(e => e.NumElements);   // what the adapter file stores
            specs.Add(new AdapterSpec(adapter, 1.0));
        }

        var generated = Path.Combine(cellDir, "generated");
        ToyProtocolImages.Generate(baseModel, subject, specs, new ProtocolSampling(config.ImagesPerPrompt, seed * 1000, config.SamplingSteps, config.GuidanceScale),
            generated, QuietGeneration.Instance, cancel);
        var (report, judged) = ToyProtocolImages.Score(generated, subject, data.Protocol, data.HeldOut, evaluators, arm.Name, data.EmbeddingCache);
        var result = new CellResult
        {
            Arm = arm.Name, Lr = arm.IsBase ? 0 : lr, Subject = subject.Name, Seed = seed, AdapterParameters = parameters, FinalLoss = loss,
            Dino = report.Scores.Overall.Dino.Mean, ClipI = report.Scores.Overall.ClipI.Mean, ClipT = report.Scores.Overall.ClipT.Mean,
            RealDino = report.RealVsReal.Dino.Mean, RealClipI = report.RealVsReal.ClipI.Mean,
            JudgeAll = judged.Scores == 0 ? double.NaN : judged.AllCorrect / (double)judged.Scores,
            JudgeShape = judged.Accuracy(JudgeAttribute.Shape), JudgeBackground = judged.Accuracy(JudgeAttribute.BackgroundColour),
            Seconds = clock.Elapsed.TotalSeconds,
        };
        AtomicFile.WriteAllText(resultPath, JsonSerializer.Serialize(result, Json));
        return result;
    }

    private sealed class QuietGeneration : IGenerationProgress
    {
        public static QuietGeneration Instance { get; } = new();
        public void Start(int pendingImages, int alreadyDone) { }
        public void Step(int step, int steps) { }
        public void ImagesWritten(IReadOnlyList<PlannedImage> images) { }
        public void Warning(string message) => Console.Error.WriteLine($"warning: {message}");
    }
}
