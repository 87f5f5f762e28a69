using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters;

/// <summary>
/// DoRA (Liu et al. 2024): W' = m ⊙ V / ||V||_row with V = W0 + s B A. As in the paper's §4.3 and PEFT, the
/// norm is a constant in backward: y = (m / stopgrad(||V||)) ⊙ (W0 x + s B A x) + b. The row norms are
/// obtained from ||W0||², W0 Aᵀ and A Aᵀ (thin products), so V is never formed in the forward.
/// </summary>
public sealed class DoraLinear : LowRankPairLayer
{
    private Tensor? _mergedNorm;
    private double _mergedScaling;

    public DoraLinear(Parameter weight, Parameter? bias, AdapterOptions options, string adapterName = "default", bool ownsBase = true)
        : base(nameof(DoraLinear), weight, bias, options with { Method = AdapterMethod.Dora }, adapterName, ownsBase)
    {
        _m = NewParameter([OutFeatures]);
        using (no_grad()) _m.copy_(linalg.vector_norm(weight.to_type(_m.dtype), 2, [1L], false));
        register_parameter("lora_magnitude_vector", lora_magnitude_vector);
    }

    private Parameter _m;

    public Parameter lora_magnitude_vector { get => _m; set { _m = value; ConditionallyRegisterParameter(nameof(lora_magnitude_vector), value); } }

    public override IReadOnlyList<AdapterParameter> AdapterParameters() =>
    [
        new("lora_A", lora_A, AdapterParameterRole.A),
        new("lora_B", lora_B, AdapterParameterRole.B),
        new("lora_magnitude_vector", lora_magnitude_vector, AdapterParameterRole.Magnitude),
    ];

    protected internal override bool NeedsBaseOutput => true;

    /// <summary>||W + s B A||_row without forming the d_out x d_in sum: ||W||² + 2s rowsum(B ⊙ W Aᵀ) + s² rowsum(B Aᵀ... ).</summary>
    public Tensor RowNorm(double scaling)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var a = lora_A.detach();
        var b = lora_B.detach();
        var w = weight.detach().to_type(a.dtype);
        var w2 = linalg.vector_norm(w, 2, [1L], false).square();
        var cross = (b * w.mm(a.t())).sum(1);
        var quad = (b.mm(a.mm(a.t())) * b).sum(1);
        var n2 = w2 + cross * (2 * scaling) + quad * (scaling * scaling);
        return n2.clamp_min(0).sqrt().MoveToOuterDisposeScope();
    }

    protected internal override Tensor AddBranch(Tensor x, Tensor y, Tensor? baseOut)
    {
        ArgumentNullException.ThrowIfNull(baseOut);
        var ratio = lora_magnitude_vector / RowNorm(Scaling);         // m / stopgrad(||V||), grad flows to m
        var h = DropoutOnBranch(x).mm(lora_A.t().mul(Scaling));
        // (m/n − 1) ⊙ W0 x + (m/n) ⊙ s B A x; the row factor is folded into B (d_out x r) rather than the N x d_out product.
        return AddMm(y + baseOut * (ratio - 1), h, (lora_B * ratio.unsqueeze(1)).t());
    }

    protected override Tensor DeltaWeight(double factor)
    {
        using var scope = NewDisposeScope();
        var v = weight.detach() + base.DeltaWeight(factor);
        var merged = v * (lora_magnitude_vector.detach() / linalg.vector_norm(v, 2, [1L], false)).unsqueeze(1);
        return (merged - weight.detach()).MoveToOuterDisposeScope();
    }

    public override void Merge()
    {
        if (IsMerged) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _mergedScaling = Scaling;
        var v = weight + base.DeltaWeight(_mergedScaling);
        var norm = linalg.vector_norm(v, 2, [1L], false);
        weight.copy_(v * (lora_magnitude_vector / norm).unsqueeze(1));
        _mergedNorm?.Dispose();
        _mergedNorm = norm.DetachFromDisposeScope();
        MarkMerged(true);
    }

    /// <summary>The row norms kept for Unmerge are no registered tensor: they follow the layer to its new device here.</summary>
    protected override void _toEpilog(ScalarType? dtype, Device? device, bool non_blocking)
    {
        base._toEpilog(dtype, device, non_blocking);
        if (_mergedNorm is null || device is null || (_mergedNorm.device_type == device.type && _mergedNorm.device_index == device.index)) return;
        var moved = _mergedNorm.to(device).DetachFromDisposeScope();
        _mergedNorm.Dispose();
        _mergedNorm = moved;
    }

    /// <summary>W0 = W' ⊙ (||V|| / m) − s B A, with the norm cached at merge time.</summary>
    public override void Unmerge()
    {
        if (!IsMerged) return;
        if (AnyStackedMerged) throw new InvalidOperationException("unmerge the adapters stacked on this DoRA layer first (UnmergeAll does)");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var restored = weight * (_mergedNorm! / lora_magnitude_vector).unsqueeze(1) - base.DeltaWeight(_mergedScaling);
        weight.copy_(restored);
        _mergedNorm!.Dispose();
        _mergedNorm = null;
        MarkMerged(false);
    }
}
