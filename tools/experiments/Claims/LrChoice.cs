namespace DiffusionPeft.Experiments.Claims;

/// <summary>Chooses a learning rate from runs on the tuning seeds only.</summary>
public static class LrChoice
{
    /// <summary>Fewest median steps to the threshold (never reached = ∞); ties by the lowest median final loss.</summary>
    public static double BySpeed(IEnumerable<(double Lr, RunOutcome Outcome)> runs) =>
        runs.GroupBy(r => r.Lr)
            .OrderBy(g => ConfidenceIntervals.Median(g.Select(r => r.Outcome.StepsOrInfinity).ToList()))
            .ThenBy(g => ConfidenceIntervals.Median(g.Select(r => r.Outcome.Final).ToList()))
            .First().Key;

    /// <summary>Lowest median final loss (diverged = ∞); ties by speed.</summary>
    public static double ByFinalLoss(IEnumerable<(double Lr, RunOutcome Outcome)> runs) =>
        runs.GroupBy(r => r.Lr)
            .OrderBy(g => ConfidenceIntervals.Median(g.Select(r => r.Outcome.Final).ToList()))
            .ThenBy(g => ConfidenceIntervals.Median(g.Select(r => r.Outcome.StepsOrInfinity).ToList()))
            .First().Key;
}
