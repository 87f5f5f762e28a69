using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>Entropy effective rank (Roy &amp; Vetterli 2007): exp(H(p)) with p = σ / Σσ over the singular values σ.</summary>
public static class EffectiveRank
{
    /// <summary>Between 1 and min(rows, cols); NaN for a zero (or non-finite) matrix.</summary>
    public static double Of(Tensor m)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var s = linalg.svdvals(m.detach().to_type(ScalarType.Float64));
        var total = s.sum();
        double t = total.item<double>();
        if (!(t > 0) || !double.IsFinite(t)) return double.NaN;
        var p = s / total;
        // 0 · log(0) = 0: clamping inside the log leaves zero singular values contributing nothing.
        return Math.Exp(-(p * p.clamp_min(1e-300).log()).sum().item<double>());
    }
}
