using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters;

/// <summary>
/// SDS-LoRA (Oh, Baik, Lee 2026): LoRA's forward value s B A x, with gradients through the orthonormal bases only:
/// dL/dB = s G Q_A and dL/dA = s Q_Bᵀ G (Aᵀ = Q_A R_A, B = Q_B R_B thin QR, constants); the input gradient is the
/// true one. Columns of Q whose |R[ii]| is negligible are zeroed (B = 0 at init gives dL/dA = 0, as in LoRA).
/// The bases are computed on the first training forward after each <see cref="Step"/> (once per optimizer step,
/// shared by all micro-batches) unless <see cref="AdapterOptions.SdsQrEveryForward"/> is set: the trainer must
/// call Step() after every optimizer step.
/// </summary>
public sealed class SdsLoraLinear : LowRankPairLayer
{
    private Basis? _a, _b;

    /// <summary>An orthonormal basis Q of a (d x r) matrix M = Q R, and R⁻¹ when R is well conditioned (then M R⁻¹ = Q).</summary>
    public sealed record Basis(Tensor Q, Tensor? RInverse) : IDisposable
    {
        public void Dispose() { Q.Dispose(); RInverse?.Dispose(); }
    }

    public SdsLoraLinear(Parameter weight, Parameter? bias, AdapterOptions options, string adapterName = "default", bool ownsBase = true)
        : base(nameof(SdsLoraLinear), weight, bias, options with { Method = AdapterMethod.SdsLora }, adapterName, ownsBase) { }

    public override void Step() => InvalidateCaches();

    public override void InvalidateCaches()
    {
        _a?.Dispose(); _a = null;
        _b?.Dispose(); _b = null;
    }

    /// <summary>The current bases: of Aᵀ (d_in x r) and of B (d_out x r).</summary>
    public (Basis A, Basis B) Bases()
    {
        if (_a is null || _b is null || Options.SdsQrEveryForward)
        {
            InvalidateCaches();
            _a = OrthonormalBasis(lora_A.detach().t(), Options.SdsTolerance, Options.SdsTriangularSolve);
            _b = OrthonormalBasis(lora_B.detach(), Options.SdsTolerance, Options.SdsTriangularSolve);
        }
        return (_a, _b);
    }

    /// <summary>
    /// Thin QR of a (d x r) matrix; columns with |R[ii]| &lt;= tol · max|R[jj]| (or an all-zero R) are zeroed. When no
    /// column is zeroed and cond(R) &lt;= 1/sqrt(eps) of the dtype, R⁻¹ is returned too: then x Q = (x Mᵀ...) products can
    /// reuse LoRA's own thin products (x Aᵀ, g B) through an r x r matmul instead of a second pass over x or g.
    /// </summary>
    public static Basis OrthonormalBasis(Tensor m, double tol, bool withInverse = true)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var (q, r) = linalg.qr(m, linalg.QRMode.Reduced);
        var d = r.diagonal().abs();
        var keep = d.gt(d.max() * tol).logical_and(d.gt(0));
        Tensor? rInv = null;
        if (withInverse && keep.all().item<bool>())
        {
            var sv = linalg.svdvals(r);
            double cond = (sv.max() / sv.min()).to_type(ScalarType.Float64).item<double>();
            double eps = m.dtype == ScalarType.Float64 ? 2.2e-16 : m.dtype == ScalarType.Float32 ? 1.2e-7 : 7.8e-3;
            if (double.IsFinite(cond) && cond <= 1 / Math.Sqrt(eps))
                rInv = linalg.inv(r).DetachFromDisposeScope();
        }
        return new Basis((q * keep.to_type(q.dtype)).DetachFromDisposeScope(), rInv);
    }

    protected internal override Tensor AddBranch(Tensor x, Tensor y, Tensor? baseOut)
    {
        if (!is_grad_enabled() || !(lora_A.requires_grad || lora_B.requires_grad))
            return AddLoraBranch(x, y);
        x = DropoutOnBranch(x);
        var (a, b) = Bases();
        return Options.SdsBackward == SdsBackward.Custom
            ? SdsLoraFunction.apply(y, x, lora_A, lora_B, a.Q, b.Q, a.RInverse!, b.RInverse!, Scaling)
            : AutogradBranch(x, y, a.Q, b.Q);
    }

    /// <summary>methods.md: s [Bd (Ad x) + (B − Bd)(Q_Aᵀ x) + Q_B ((A − Ad) x)], value s B A x, gradients s G Q_A and s Q_Bᵀ G.</summary>
    private Tensor AutogradBranch(Tensor x, Tensor y, Tensor qa, Tensor qb)
    {
        var ad = lora_A.detach();
        var bd = lora_B.detach();
        double s = Scaling;
        var y1 = AddMm(y, x.mm(ad.t()).mul(s), bd.t());
        var y2 = AddMm(y1, x.mm(qa).mul(s), (lora_B - bd).t());
        return AddMm(y2, x.mm((lora_A - ad).t()).mul(s), qb.t());
    }
}

/// <summary>
/// Custom backward for SDS-LoRA: out = y + s (x Aᵀ) Bᵀ; dL/dx = s (g B) A, dL/dB = s gᵀ (x Q_A), dL/dA = s (g Q_B)ᵀ x.
/// x Q_A = (x Aᵀ) R_A⁻¹ and g Q_B = (g B) R_B⁻¹ when the inverses are given, so the step costs LoRA's six thin
/// products plus two r x r ones; otherwise [Aᵀ | Q_A] and [B | Q_B] are applied in one product each.
/// Inputs: y, x, A, B, Q_A, Q_B, R_A⁻¹ (or null), R_B⁻¹ (or null), s.
/// </summary>
internal sealed class SdsLoraFunction : torch.autograd.SingleTensorFunction<SdsLoraFunction>
{
    public override string Name => nameof(SdsLoraFunction);

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var (y, x, a, b, qa) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3], (Tensor)vars[4]);
        var qb = (Tensor)vars[5];
        var rInvA = vars[6] as Tensor;
        var rInvB = vars[7] as Tensor;
        double s = (double)vars[8];
        int r = (int)a.shape[0];
        Tensor h, xqa;
        if (rInvA is not null)
        {
            var hRaw = x.mm(a.t());
            h = hRaw.mul(s);
            xqa = h.mm(rInvA);
        }
        else
        {
            var hx = x.mm(cat([a.t(), qa], 1)).mul(s);
            h = hx.narrow(1, 0, r);
            xqa = hx.narrow(1, r, r);
        }
        ctx.save_for_backward([x, a, b, qb, xqa, rInvB!]);
        ctx.save_data("s", s);
        ctx.save_data("x_grad", x.requires_grad);
        ctx.save_data("solve_b", rInvB is not null);
        return AdapterLayer.AddMm(y, h, b.t());
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor g)
    {
        var saved = ctx.get_saved_variables();
        var (x, a, b, qb, xqa) = (saved[0], saved[1], saved[2], saved[3], saved[4]);
        double s = (double)ctx.get_data("s");
        bool xGrad = (bool)ctx.get_data("x_grad");
        int r = (int)a.shape[0];
        Tensor gB, gQb;
        if ((bool)ctx.get_data("solve_b"))
        {
            gB = g.mm(b).mul(s);
            gQb = gB.mm(saved[5]);
        }
        else
        {
            var gb = g.mm(cat([b, qb], 1)).mul(s);
            gB = gb.narrow(1, 0, r);
            gQb = gb.narrow(1, r, r);
        }
        Tensor? gx = xGrad ? gB.mm(a) : null;
        var dA = gQb.t().mm(x);
        var dB = g.t().mm(xqa);
        return [g, gx!, dA, dB, null!, null!, null!, null!, null!];
    }
}
