namespace DiffusionPeft.Experiments.Claims;

/// <summary>One training run: the loss curve (relative, see the experiment), the first eval step at or below the threshold, divergence.</summary>
public sealed record RunOutcome(int[] EvalSteps, double[] Loss, int? StepsToThreshold, bool Diverged, double Seconds)
{
    /// <summary>The last loss; +∞ when the run diverged.</summary>
    public double Final => Diverged ? double.PositiveInfinity : Loss[^1];

    /// <summary>Steps to the threshold, +∞ when never reached (censored at the step budget).</summary>
    public double StepsOrInfinity => StepsToThreshold is int s ? s : double.PositiveInfinity;
}
