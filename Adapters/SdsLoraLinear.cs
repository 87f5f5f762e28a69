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
    private Tensor? _qa, _qb;

    public SdsLoraLinear(Parameter weight, Parameter? bias, AdapterOptions options, string adapterName = "default", bool ownsBase = true)
        : base(nameof(SdsLoraLinear), weight, bias, options with { Method = AdapterMethod.SdsLora }, adapterName, ownsBase) { }

    public override void Step() => InvalidateCaches();

    public override void InvalidateCaches()
    {
        _qa?.Dispose(); _qa = null;
        _qb?.Dispose(); _qb = null;
    }

    /// <summary>The current (Q_A, Q_B): Q_A is d_in x r (from Aᵀ), Q_B is d_out x r.</summary>
    public (Tensor QA, Tensor QB) Bases()
    {
        if (_qa is null || _qb is null || Options.SdsQrEveryForward)
        {
            InvalidateCaches();
            _qa = OrthonormalBasis(lora_A.detach().t(), Options.SdsTolerance).DetachFromDisposeScope();
            _qb = OrthonormalBasis(lora_B.detach(), Options.SdsTolerance).DetachFromDisposeScope();
        }
        return (_qa, _qb);
    }

    /// <summary>Thin QR of a (d x r) matrix; columns with |R[ii]| &lt;= tol · max|R[jj]| (or an all-zero R) are zeroed.</summary>
    public static Tensor OrthonormalBasis(Tensor m, double tol)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var (q, r) = linalg.qr(m, linalg.QRMode.Reduced);
        var d = r.diagonal().abs();
        var keep = d.gt(d.max() * tol).logical_and(d.gt(0));
        return (q * keep.to_type(q.dtype)).MoveToOuterDisposeScope();
    }

    protected internal override Tensor AddBranch(Tensor x, Tensor y, Tensor? baseOut)
    {
        if (!is_grad_enabled() || !(lora_A.requires_grad || lora_B.requires_grad))
            return AddLoraBranch(x, y);
        x = DropoutOnBranch(x);
        var (qa, qb) = Bases();
        return Options.SdsBackward == SdsBackward.Custom
            ? SdsLoraFunction.apply(y, x, lora_A, lora_B, qa, qb, Scaling)
            : AutogradBranch(x, y, qa, qb);
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
/// Custom backward for SDS-LoRA: out = y + s (x Aᵀ) Bᵀ. Forward computes x [Aᵀ | Q_A] in one product (x Q_A is
/// kept for dL/dB); backward computes g [B | Q_B] in one product, then dL/dx = s (g B) A, dL/dB = s gᵀ (x Q_A),
/// dL/dA = s (g Q_B)ᵀ x. Inputs: y, x, A, B, Q_A, Q_B, s.
/// </summary>
internal sealed class SdsLoraFunction : torch.autograd.SingleTensorFunction<SdsLoraFunction>
{
    public override string Name => nameof(SdsLoraFunction);

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var (y, x, a, b, qa) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3], (Tensor)vars[4]);
        var qb = (Tensor)vars[5];
        double s = (double)vars[6];
        int r = (int)a.shape[0];
        var hx = x.mm(cat([a.t(), qa], 1));
        var h = hx.narrow(1, 0, r).mul(s);
        var xqa = hx.narrow(1, r, r).mul(s);
        ctx.save_for_backward([x, a, b, qb, xqa]);
        ctx.save_data("s", s);
        ctx.save_data("x_grad", x.requires_grad);
        return AdapterLayer.AddMm(y, h, b.t());
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor g)
    {
        var saved = ctx.get_saved_variables();
        var (x, a, b, qb, xqa) = (saved[0], saved[1], saved[2], saved[3], saved[4]);
        double s = (double)ctx.get_data("s");
        bool xGrad = (bool)ctx.get_data("x_grad");
        int r = (int)a.shape[0];
        var gb = g.mm(cat([b, qb], 1)).mul(s);
        var gB = gb.narrow(1, 0, r);
        var gQb = gb.narrow(1, r, r);
        Tensor? gx = xGrad ? gB.mm(a) : null;
        var dA = gQb.t().mm(x);
        var dB = g.t().mm(xqa);
        return [g, gx!, dA, dB, null!, null!, null!];
    }
}
