using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// The direct test of SDS-LoRA's claim: the pair (B·M, M⁻¹·A) has the same product, so the same forward and loss, as
/// (B, A) for any invertible r x r M; only the factors' conditioning changes. Starting from balanced factors of σ·U·Vᵀ
/// (both with all singular values √σ), cond(B·M) = cond(M⁻¹·A) = cond(M).
/// </summary>
public static class FactorRebalancing
{
    /// <summary>M = Q1 diag(m) Q2ᵀ with random orthogonal Q1, Q2 and m_i = κ^(1/2 − i/(r−1)): geometric mean 1, condition number κ.</summary>
    public static Tensor ConditionedMatrix(int r, double kappa, Generator g)
    {
        using var scope = NewDisposeScope();
        var m = Enumerable.Range(0, r).Select(i => r == 1 ? 1.0 : Math.Pow(kappa, 0.5 - (double)i / (r - 1))).ToArray();
        var q1 = LowRankTargets.Orthonormal(r, r, g, ScalarType.Float64);
        var q2 = LowRankTargets.Orthonormal(r, r, g, ScalarType.Float64);
        return (q1 * tensor(m, ScalarType.Float64)).mm(q2.t()).MoveToOuterDisposeScope();
    }

    /// <summary>(B·M, M⁻¹·A), computed in float64 and returned in the factors' dtype.</summary>
    public static (Tensor B, Tensor A) Rebalance(Tensor b, Tensor a, Tensor m)
    {
        using var scope = NewDisposeScope();
        var f64 = ScalarType.Float64;
        var md = m.to_type(f64);
        var nb = b.to_type(f64).mm(md).to_type(b.dtype);
        var na = linalg.solve(md, a.to_type(f64)).to_type(a.dtype);
        return (nb.MoveToOuterDisposeScope(), na.MoveToOuterDisposeScope());
    }

    /// <summary>Balanced factors of σ·U·Vᵀ (U: d_out x r, V: d_in x r orthonormal): B = √σ·U, A = √σ·Vᵀ.</summary>
    public static (Tensor B, Tensor A) Balanced(Tensor u, Tensor v, double sigma) =>
        (u * Math.Sqrt(sigma), v.t() * Math.Sqrt(sigma));
}
