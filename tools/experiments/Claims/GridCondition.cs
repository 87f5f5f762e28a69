namespace DiffusionPeft.Experiments.Claims;

/// <summary>A learning-rate-grid comparison's problem: layer shape and a planted ΔW* (kind, rank, κ, largest singular value 1).</summary>
public sealed record GridCondition(string Name, LayerShape Shape, TargetKind Kind, int TargetRank, double Kappa)
{
    /// <summary>A stable (process-independent) number derived from the name, for the target's generator.</summary>
    public ulong Key => Name.Aggregate(2166136261UL, (h, ch) => (h ^ ch) * 16777619UL) % 1_000_000UL;
}
