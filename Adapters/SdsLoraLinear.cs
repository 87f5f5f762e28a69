using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters;

/// <summary>
/// SDS-LoRA (Oh, Baik, Lee 2026): LoRA's forward value s B A x, with gradients through the orthonormal bases only:
/// dL/dB = s G Q_A and dL/dA = s Q_Bᵀ G (Aᵀ = Q_A R_A, B = Q_B R_B thin QR, constants); the input gradient is the
/// true one. Columns of Q whose |R[ii]| is negligible are zeroed (B = 0 at init gives dL/dA = 0, as in LoRA).
/// The bases are computed once per optimizer step, shared by all micro-batches: <see cref="AdapterLayer.OnOptimizerStep"/>
/// recomputes them for all SDS layers at once (see <see cref="Compute"/>); a layer whose bases were dropped
/// (<see cref="InvalidateCaches"/>) computes its own on the next training forward. The backward is LoRA's graph on
/// reparameterized factors (<see cref="ReparameterizedBranch"/>), or a custom autograd function where an R is not
/// safely invertible. (methods.md's detach formulation is the tests' reference.)
/// </summary>
public sealed class SdsLoraLinear : LowRankPairLayer
{
    private Tensor? _qa, _qb, _rInvA, _rInvB;
    private bool _factored;

    public SdsLoraLinear(Parameter weight, Parameter? bias, AdapterOptions options, string adapterName = "default", bool ownsBase = true)
        : base(nameof(SdsLoraLinear), weight, bias, options with { Method = AdapterMethod.SdsLora }, adapterName, ownsBase) { }

    public override void InvalidateCaches()
    {
        _factored = false;
        _qa?.Dispose(); _qa = null;
        _qb?.Dispose(); _qb = null;
        _rInvA?.Dispose(); _rInvA = null;
        _rInvB?.Dispose(); _rInvB = null;
    }

    /// <summary>Whether the current step can use the R⁻¹ (reparameterized) route: both inverses usable. Otherwise the custom function runs.</summary>
    public bool UsesInverseRoute
    {
        get { if (!_factored) Compute([this]); return _rInvA is not null && _rInvB is not null; }
    }

    /// <summary>The current bases: Q_A of Aᵀ (d_in x r) and Q_B of B (d_out x r).</summary>
    public (Tensor QA, Tensor QB) Bases()
    {
        if (!_factored) Compute([this]);
        if (_qa is null || _qb is null)
        {
            // Factored through the Gram matrix: Q = M R⁻¹, formed only when a route or a caller needs it.
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            var f64 = ScalarType.Float64;
            _qa = lora_A.detach().t().to_type(f64).mm(_rInvA!.to_type(f64)).to_type(lora_A.dtype).DetachFromDisposeScope();
            _qb = lora_B.detach().to_type(f64).mm(_rInvB!.to_type(f64)).to_type(lora_B.dtype).DetachFromDisposeScope();
        }
        return (_qa, _qb);
    }

    /// <summary>Computes the factors of every given SDS layer now (see <see cref="Compute"/>).</summary>
    public static void RefreshBases(IEnumerable<SdsLoraLinear> layers) => Compute(layers.ToList());

    /// <summary>
    /// R_A⁻¹ and R_B⁻¹ where usable (positive-diagonal R of Aᵀ = Q_A R_A, B = Q_B R_B): when no column is zeroed and
    /// ‖R‖_F‖R⁻¹‖_F (≥ cond₂ R) &lt;= 1/sqrt(eps) of the adapter dtype, or, for R_B, when B = 0 (then g B = 0 and
    /// dL/dA = 0 either way). float32/bf16 QR adapters go through <see cref="GramFactors"/> (all layers in one batch);
    /// float64 ones, polar bases and every layer the Gram route cannot factor cleanly (B = 0 at init, a negligible
    /// column) through <see cref="HouseholderFactors"/>, which also sets Q.
    /// </summary>
    private static void Compute(IReadOnlyList<SdsLoraLinear> layers)
    {
        foreach (var l in layers) l.InvalidateCaches();
        using var _ = no_grad();
        var byGram = layers.ToLookup(l => l.Options.SdsBasis == SdsBasis.Qr && l.lora_A.dtype != ScalarType.Float64);
        var rest = byGram[false].ToList();
        foreach (var group in byGram[true].GroupBy(l => l.Rank)) rest.AddRange(GramFactors(group.ToList()));
        HouseholderFactors(rest);
        foreach (var l in layers) l._factored = true;
    }

    private static double Epsilon(ScalarType dtype) =>
        dtype == ScalarType.Float64 ? 2.2e-16 : dtype == ScalarType.Float32 ? 1.2e-7 : 7.8e-3;

    /// <summary>
    /// Thin-QR factors of float32/bf16 adapters of one rank from their float64 Gram matrices: R = chol(Mᵀ M)ᵀ is
    /// exactly the positive-diagonal R of M = Q R (and Q = M R⁻¹, formed lazily by <see cref="Bases"/>). In float64 the
    /// squared condition number costs nothing at the condition numbers the R⁻¹ route accepts (≤ 1/sqrt(eps) of the
    /// adapter dtype). All layers' r x r problems go through one batched Cholesky, inverse and norm, so the cost is a
    /// few dozen ops per step instead of Householder on every d x r matrix. (Measured on SD 1.5's 128 attention layers
    /// at rank 16: ~30 ms per step with batched Householder per shape.) Returns the layers it could not factor cleanly.
    /// </summary>
    private static List<SdsLoraLinear> GramFactors(List<SdsLoraLinear> layers)
    {
        using var scope = NewDisposeScope();
        var f64 = ScalarType.Float64;
        var order = new List<SdsLoraLinear>();
        var gramsA = new List<Tensor>();
        var gramsB = new List<Tensor>();
        foreach (var group in layers.GroupBy(l => (l.InFeatures, l.OutFeatures)))
        {
            var g = group.ToList();
            order.AddRange(g);
            var a = stack(g.Select(l => l.lora_A.detach())).to_type(f64);   // Aᵀ's Gram is A Aᵀ
            var b = stack(g.Select(l => l.lora_B.detach())).to_type(f64);
            gramsA.Add(a.matmul(a.mT));
            gramsB.Add(b.mT.matmul(b));
        }
        int n = order.Count;
        var (lower, info) = linalg.cholesky_ex(cat([cat(gramsA), cat(gramsB)]));
        var r = lower.mT;
        var d = r.diagonal(0, -2, -1);
        var device = order[0].lora_A.device;
        var tol = tensor(order.Select(l => l.Options.SdsTolerance).ToArray(), f64, device).repeat(2);
        var limit = tensor(order.Select(l => 1 / Math.Sqrt(Epsilon(l.lora_A.dtype))).ToArray(), f64, device).repeat(2);
        var clean = info.eq(0).logical_and(d.gt(d.amax([-1], keepdim: true) * tol.unsqueeze(-1)).all(-1));
        var (rInv, ok) = GuardedInverse(r, clean, limit);
        var flags = ok.cpu().data<bool>().ToArray();
        var failed = new List<SdsLoraLinear>();
        var byType = new Dictionary<ScalarType, Tensor>();
        for (int i = 0; i < n; i++)
        {
            var l = order[i];
            if (!(flags[i] && flags[n + i])) { failed.Add(l); continue; }
            var dtype = l.lora_A.dtype;
            if (!byType.TryGetValue(dtype, out var cast)) byType[dtype] = cast = rInv.to_type(dtype);
            l._rInvA = cast[i].DetachFromDisposeScope();
            l._rInvB = cast[n + i].DetachFromDisposeScope();
        }
        return failed;
    }

    /// <summary>Batched Householder QR (or SVD for polar bases) per matrix shape; sets Q and, where usable, R⁻¹.</summary>
    private static void HouseholderFactors(IReadOnlyList<SdsLoraLinear> layers)
    {
        foreach (var group in layers.GroupBy(l => (l.InFeatures, l.OutFeatures, l.Rank, l.Options.SdsTolerance, l.lora_A.dtype, l.Options.SdsBasis)))
        {
            using var scope = NewDisposeScope();
            var g = group.ToList();
            double tol = group.Key.SdsTolerance;
            double eps = Epsilon(group.Key.dtype);
            var polar = group.Key.SdsBasis == SdsBasis.Polar;
            var (qa, rInvA, okA) = Factor(stack(g.Select(l => l.lora_A.detach().t())), tol, eps, zeroOk: false, polar);
            var (qb, rInvB, okB) = Factor(stack(g.Select(l => l.lora_B.detach())), tol, eps, zeroOk: true, polar);
            var flags = stack([okA, okB]).cpu().data<bool>().ToArray();
            for (int i = 0; i < g.Count; i++)
            {
                g[i]._qa = qa[i].DetachFromDisposeScope();
                g[i]._qb = qb[i].DetachFromDisposeScope();
                if (flags[i] && flags[g.Count + i])
                {
                    g[i]._rInvA = rInvA[i].DetachFromDisposeScope();
                    g[i]._rInvB = rInvB[i].DetachFromDisposeScope();
                }
            }
        }
    }

    /// <summary>M = Q R with Q orthonormal (negligible directions zeroed) and R the right factor: triangular with a
    /// positive diagonal (QR) or V Σ Vᵀ (polar). Everything after only needs M = Q R, so both bases share the routes.</summary>
    private static (Tensor Q, Tensor RInverse, Tensor Usable) Factor(Tensor m, double tol, double eps, bool zeroOk, bool polar)
    {
        Tensor q, r, d, keep;
        if (polar)
        {
            var (u, sv, vh) = linalg.svd(m, fullMatrices: false);
            d = sv;
            keep = d.gt(d.amax([-1], keepdim: true) * tol).logical_and(d.gt(0));
            q = (u * keep.to_type(u.dtype).unsqueeze(-2)).matmul(vh);
            r = (vh.mT * sv.unsqueeze(-2)).matmul(vh);
        }
        else
        {
            (q, r) = linalg.qr(m, linalg.QRMode.Reduced);
            var diag = r.diagonal(0, -2, -1);
            d = diag.abs();
            keep = d.gt(d.amax([-1], keepdim: true) * tol).logical_and(d.gt(0));
            var sign = diag.lt(0).to_type(q.dtype).mul(-2).add(1);   // ±1 on the factor's device (scalar where() arguments would be CPU tensors)
            q = q * (sign * keep.to_type(q.dtype)).unsqueeze(-2);
            r = r * sign.unsqueeze(-1);
        }
        var (rInv, wellConditioned) = GuardedInverse(r, keep.all(-1), tensor(1 / Math.Sqrt(eps), r.dtype, r.device));
        var zero = d.amax([-1]).eq(0);
        var usable = zeroOk ? wellConditioned.logical_or(zero) : wellConditioned;
        return (q, rInv * wellConditioned.to_type(r.dtype).unsqueeze(-1).unsqueeze(-1), usable);
    }

    /// <summary>
    /// R⁻¹ of the full-rank matrices of a batch (the identity stands in for the others) and whether each is usable:
    /// full rank and ‖R‖_F ‖R⁻¹‖_F, an upper bound of cond₂(R), within the limit.
    /// </summary>
    private static (Tensor RInverse, Tensor WellConditioned) GuardedInverse(Tensor r, Tensor full, Tensor limit)
    {
        var safe = where(full.unsqueeze(-1).unsqueeze(-1), r, eye(r.shape[^1], dtype: r.dtype, device: r.device).expand_as(r));
        var rInv = linalg.inv(safe);
        return (rInv, full.logical_and((linalg.matrix_norm(safe) * linalg.matrix_norm(rInv)).le(limit)));
    }

    protected internal override Tensor AddBranch(Tensor x, Tensor y, Tensor? baseOut)
    {
        if (!is_grad_enabled() || !(lora_A.requires_grad || lora_B.requires_grad))
            return AddLoraBranch(x, y);
        x = DropoutOnBranch(x);
        if (UsesInverseRoute) return ReparameterizedBranch(x, y);
        var (qa, qb) = Bases();
        return SdsLoraFunction.apply(y, x, lora_A, lora_B, qa, qb, Scaling);
    }

    /// <summary>
    /// LoRA's own graph on reparameterized factors A' = Ad + R_B⁻¹ (A − Ad) and B' = Bd + (B − Bd) R_A⁻ᵀ (d = detached).
    /// A − Ad is exactly zero, so A' = A and B' = B bit for bit and the forward is LoRA's. Backward, autograd maps LoRA's
    /// gradients through the r x r factors: dL/dA = R_B⁻ᵀ (s Bᵀ G) = s Q_Bᵀ G and dL/dB = (s G Aᵀ) R_A⁻¹ = s G Q_A
    /// (Aᵀ = Q_A R_A, B = Q_B R_B); the input gradient is the true s Aᵀ Bᵀ g. Only d x r and r x r products are added
    /// to LoRA's step and no custom autograd node (each costs TorchSharp a managed round trip per call).
    /// </summary>
    private Tensor ReparameterizedBranch(Tensor x, Tensor y)
    {
        var ad = lora_A.detach();
        var bd = lora_B.detach();
        var a = AddMm(ad, _rInvB!, lora_A - ad);
        var b = AddMm(bd, lora_B - bd, _rInvA!.t());
        return AddMm(y, x.mm(a.t().mul(Scaling)), b.t());
    }
}

/// <summary>
/// Custom backward for SDS-LoRA: out = y + s (x Aᵀ) Bᵀ. The forward applies [Aᵀ | Q_A] to x in one product (x Q_A is
/// kept for dL/dB), the backward applies [B | Q_B] to g in one product; then dL/dx = s (g B) A, dL/dB = s gᵀ (x Q_A),
/// dL/dA = s (g Q_B)ᵀ x. Widening the two thin products from r to 2r columns costs little (they are bound by reading
/// x and g). Used wherever an R is not safely invertible; TorchSharp caches
/// its N x d_out output per call, which makes it slower than the reparameterized route. Inputs: y, x, A, B, Q_A, Q_B, s.
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
        var hx = x.mm(cat([a.t(), qa], 1).mul_(s));   // s on the small factor: no N-sized scaling
        ctx.save_for_backward([x, a, b, qb, hx]);
        ctx.save_data("s", s);
        ctx.save_data("x_grad", x.requires_grad);
        return AdapterLayer.AddMm(y, hx.narrow(1, 0, r), b.t());
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor g)
    {
        var saved = ctx.get_saved_variables();
        var (x, a, b, qb, hx) = (saved[0], saved[1], saved[2], saved[3], saved[4]);
        double s = (double)ctx.get_data("s");
        bool xGrad = (bool)ctx.get_data("x_grad");
        int r = (int)a.shape[0];
        var gb = g.mm(cat([b, qb], 1).mul_(s));
        Tensor? gx = xGrad ? gb.narrow(1, 0, r).mm(a) : null;
        var dA = gb.narrow(1, r, r).t().mm(x);
        var dB = g.t().mm(hx.narrow(1, r, r));
        return [g, gx!, dA, dB, null!, null!, null!];
    }
}
