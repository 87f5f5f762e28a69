using DiffusionPeft.DreamBooth.Logging;

namespace DiffusionPeft.Cli.ConsoleUi;

/// <summary>Training progress on the console: a progress bar of steps with loss and LR, messages above it.</summary>
public sealed class CliTrainingProgress(ProgressLine line) : ITrainingProgress
{
    private long _offset = -1;
    private long _total = -1;

    public void Info(string message) => line.Message(message);
    public void Warning(string message) => line.Message($"warning: {message}");

    public void Step(StepReport report)
    {
        // A new run (a resume, or the next stage of a recipe) restarts the bar.
        if (_offset < 0 || report.Step <= _offset + 1 || report.TotalSteps != _total)
        {
            _offset = report.Step - 1;
            _total = report.TotalSteps;
            line.Start((int)(report.TotalSteps - _offset));
        }
        line.Report((int)(report.Step - _offset), $"step {report.Step}/{report.TotalSteps} | loss {report.Loss:F4} | lr {report.LearningRate:G3}");
    }
}
