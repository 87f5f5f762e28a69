using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.AdapterMethods;

/// <summary>Random frozen weights and low-rank target updates with prescribed singular values.</summary>
public static class Targets
{
    /// <summary>Entries N(0, 1/d_in): spectral norm about 2 for a square layer.</summary>
    public static Tensor RandomWeight(int dOut, int dIn, Generator g) => randn([dOut, dIn], generator: g).div_(Math.Sqrt(dIn));

    /// <summary>Singular values scale · κ^(-i/(k-1)), i = 0..k-1: the largest is scale, the condition number is κ.</summary>
    public static double[] SingularValues(int k, double kappa, double scale) =>
        Enumerable.Range(0, k).Select(i => k == 1 ? scale : scale * Math.Pow(kappa, -(double)i / (k - 1))).ToArray();

    /// <summary>ΔW* = U diag(σ) Vᵀ with orthonormal U, V (d x k); the PSD kind uses V = U (square layers only).</summary>
    public static Tensor LowRankUpdate(int dOut, int dIn, int k, double kappa, double scale, TargetKind kind, Generator g)
    {
        if (kind == TargetKind.Psd && dOut != dIn) throw new ArgumentException($"a PSD target needs a square layer, got {dOut} x {dIn}");
        using var scope = NewDisposeScope();
        var u = Orthonormal(dOut, k, g);
        var v = kind == TargetKind.Psd ? u : Orthonormal(dIn, k, g);
        var s = tensor(SingularValues(k, kappa, scale).Select(x => (float)x).ToArray());
        return (u * s).mm(v.t()).MoveToOuterDisposeScope();
    }

    private static Tensor Orthonormal(int d, int k, Generator g)
    {
        var (q, _) = linalg.qr(randn([d, k], generator: g), linalg.QRMode.Reduced);
        return q;
    }

    /// <summary>
    /// min over symmetric PSD P of rank ≤ r of ||M − P||²_F / ||M||²_F: the best SingLoRA on a square layer can do
    /// (ΔW = s u A Aᵀ with s u &gt; 0). The minimiser keeps the r largest positive eigenvalues of the symmetric part.
    /// </summary>
    public static double PsdFloor(Tensor m, int rank)
    {
        using var scope = NewDisposeScope();
        var md = m.to_type(ScalarType.Float64);
        var sym = (md + md.t()) / 2;
        var (eval, evec) = linalg.eigh(sym);
        var keep = eval.clamp_min(0);
        var order = keep.argsort(descending: true);
        var mask = zeros_like(keep).index_fill_(0, order.narrow(0, 0, Math.Min(rank, (int)keep.shape[0])), 1.0);
        var p = (evec * (keep * mask)).mm(evec.t());
        return ((md - p).square().sum() / md.square().sum()).item<double>();
    }
}
