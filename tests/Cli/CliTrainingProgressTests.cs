using DiffusionPeft.Cli.ConsoleUi;
using DiffusionPeft.DreamBooth.Logging;
using Xunit;

namespace DiffusionPeft.Tests.Cli;

public sealed class CliTrainingProgressTests
{
    private static StepReport At(long step, long total) => new(step, total, 0, 0.5, 1e-3, 1.0, 1.0, TimeSpan.Zero, TimeSpan.Zero);

    [Fact]
    public void A_second_run_of_another_length_restarts_the_bar_with_its_own_total()
    {
        var text = new StringWriter();
        var progress = new CliTrainingProgress(new ProgressLine(text, "steps", quiet: true));
        progress.Step(At(1, 800));
        progress.Step(At(800, 800));
        progress.Step(At(1, 2500));      // the next stage of a recipe starts at step 1 of its own total
        progress.Step(At(2500, 2500));
        var lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("800/800 steps", lines[1]);
        Assert.StartsWith("2500/2500 steps", lines[^1]);
    }

    [Fact]
    public void A_resumed_run_counts_only_the_steps_left()
    {
        var text = new StringWriter();
        var progress = new CliTrainingProgress(new ProgressLine(text, "steps", quiet: true));
        progress.Step(At(201, 2500));
        progress.Step(At(2500, 2500));
        Assert.StartsWith("2300/2300 steps", text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]);
    }
}
