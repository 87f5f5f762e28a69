namespace DiffusionPeft.DreamBooth.Logging;

/// <summary>One optimizer step as reported to the console and the JSONL log.</summary>
public sealed record StepReport(long Step, long TotalSteps, int Epoch, double Loss, double LearningRate, double GradNorm,
                                double StepsPerSecond, TimeSpan Elapsed, TimeSpan Remaining);

/// <summary>Console feedback of a run; the CLI implements it with Spectre.Console.</summary>
public interface ITrainingProgress
{
    void Info(string message);
    void Warning(string message);
    void Step(StepReport report);
}

public sealed class NullTrainingProgress : ITrainingProgress
{
    public static readonly NullTrainingProgress Instance = new();
    public void Info(string message) { }
    public void Warning(string message) { }
    public void Step(StepReport report) { }
}
