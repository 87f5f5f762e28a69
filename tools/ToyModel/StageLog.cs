using System.Text.Json.Nodes;
using DiffusionPeft.DreamBooth.Logging;
using DiffusionPeft.DreamBooth.Training;

namespace DiffusionPeft.ToyModel;

/// <summary>A stage's <see cref="StageReport"/> from its run folder's log.jsonl (resumes included).</summary>
public static class StageLog
{
    /// <summary>Losses are the means of the first and last 5% of logged steps; the time is the log's last elapsed_s.</summary>
    public static StageReport Report(string stage, string folder, TrainResult result, JsonObject measurements)
    {
        var lines = File.ReadLines(Path.Combine(folder, TrainingLog.FileName)).Select(l => JsonNode.Parse(l)!).ToList();
        var losses = lines.Select(l => (double)l["loss"]!).ToList();
        int n = Math.Max(1, losses.Count / 20);
        double seconds = lines.Count == 0 ? 0 : (double)lines[^1]["elapsed_s"]!;
        return new StageReport(stage, (int)result.Steps, losses.Take(n).Average(), losses.TakeLast(n).Average(), seconds, measurements);
    }
}
