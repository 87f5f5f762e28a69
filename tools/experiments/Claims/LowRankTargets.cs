using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>Random frozen weights and planted low-rank updates with prescribed singular values.</summary>
public static class LowRankTargets
{
    /// <summary>Entries N(0, 1/d_in): spectral norm about 1 + √(d_out/d_in).</summary>
    public static Tensor RandomWeight(int dOut, int dIn, Generator g, ScalarType dtype = ScalarType.Float32) =>
        randn([dOut, dIn], dtype: dtype, generator: g).div_(Math.Sqrt(dIn));

    /// <summary>scale · κ^(−i/(k−1)), i = 0..k−1: the largest is scale and the condition number is κ.</summary>
    public static double[] SingularValues(int k, double kappa, double scale) =>
        Enumerable.Range(0, k).Select(i => k == 1 ? scale : scale * Math.Pow(kappa, -(double)i / (k - 1))).ToArray();

    /// <summary>A d x k matrix with orthonormal columns (QR of a Gaussian matrix).</summary>
    public static Tensor Orthonormal(int d, int k, Generator g, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var (q, _) = linalg.qr(randn([d, k], dtype: ScalarType.Float64, generator: g), linalg.QRMode.Reduced);
        return q.to_type(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ΔW* (d_out x d_in) of rank k. General and Psd have exactly the singular values <see cref="SingularValues"/>;
    /// SingLoraShaped is A*_out A*_inᵀ with A* = Q diag(√σ) (Q orthonormal, n x k), rescaled so its largest singular value is
    /// <paramref name="scale"/> (on a non-square layer its condition number is then only approximately κ).
    /// </summary>
    /// <summary>A general rank-k update U·S·Vᵀ whose input directions V (dIn×k, orthonormal columns) are given, U random.</summary>
    public static Tensor UpdateAlong(Tensor v, int dOut, double kappa, double scale, Generator g, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        int k = (int)v.shape[1];
        var s = tensor(SingularValues(k, kappa, scale), ScalarType.Float64);
        var delta = (Orthonormal(dOut, k, g, ScalarType.Float64) * s).mm(v.to_type(ScalarType.Float64).t());
        return delta.to_type(dtype).MoveToOuterDisposeScope();
    }

    public static Tensor Update(int dOut, int dIn, int k, double kappa, double scale, TargetKind kind, Generator g, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var s = tensor(SingularValues(k, kappa, scale), ScalarType.Float64);
        Tensor delta;
        switch (kind)
        {
            case TargetKind.General:
                delta = (Orthonormal(dOut, k, g, ScalarType.Float64) * s).mm(Orthonormal(dIn, k, g, ScalarType.Float64).t());
                break;
            case TargetKind.Psd:
                if (dOut != dIn) throw new ArgumentException($"a PSD target needs a square layer, got {dIn}→{dOut}");
                var u = Orthonormal(dOut, k, g, ScalarType.Float64);
                delta = (u * s).mm(u.t());
                break;
            case TargetKind.SingLoraShaped:
                var a = Orthonormal(Math.Max(dIn, dOut), k, g, ScalarType.Float64) * s.sqrt();
                delta = a.narrow(0, 0, dOut).mm(a.narrow(0, 0, dIn).t());
                delta = delta * (scale / linalg.matrix_norm(delta, 2).item<double>());
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
        return delta.to_type(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Singular values in descending order, computed in float64.</summary>
    public static double[] SingularValuesOf(Tensor m)
    {
        using var scope = NewDisposeScope();
        return linalg.svdvals(m.detach().to_type(ScalarType.Float64)).data<double>().ToArray();
    }

    /// <summary>Numerical rank and condition number (largest / smallest kept singular value) at a relative tolerance.</summary>
    public static (int Rank, double Kappa) RankAndCondition(Tensor m, double relativeTolerance = 1e-6)
    {
        var s = SingularValuesOf(m);
        var kept = s.Where(x => x > s[0] * relativeTolerance).ToArray();
        return (kept.Length, kept.Length == 0 ? double.NaN : kept[0] / kept[^1]);
    }

    /// <summary>
    /// min over symmetric PSD P of rank ≤ r of ‖M − P‖²_F / ‖M‖²_F: the best SingLoRA can do on a square layer
    /// (ΔW = s u A Aᵀ, s u &gt; 0). The minimiser keeps the r largest positive eigenvalues of the symmetric part.
    /// </summary>
    public static double PsdFloor(Tensor m, int rank)
    {
        using var scope = NewDisposeScope();
        var md = m.to_type(ScalarType.Float64);
        var (eval, evec) = linalg.eigh((md + md.t()) / 2);
        var keep = eval.clamp_min(0);
        var order = keep.argsort(descending: true);
        var mask = zeros_like(keep).index_fill_(0, order.narrow(0, 0, Math.Min(rank, (int)keep.shape[0])), 1.0);
        var p = (evec * (keep * mask)).mm(evec.t());
        return ((md - p).square().sum() / md.square().sum()).item<double>();
    }

    /// <summary>Eckart–Young: the relative squared error of the best rank-r approximation, Σ_{i&gt;r} σ_i² / Σ σ_i².</summary>
    public static double RankFloor(Tensor m, int rank)
    {
        var s = SingularValuesOf(m);
        double total = s.Sum(x => x * x);
        return s.Skip(rank).Sum(x => x * x) / total;
    }
}
