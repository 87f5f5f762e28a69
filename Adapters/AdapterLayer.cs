using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.Adapters;

/// <summary>What a trainable adapter tensor is, for optimizer grouping (LoRA+) and file formats.</summary>
public enum AdapterParameterRole { A, B, Magnitude, Single }

public sealed record AdapterParameter(string Name, Parameter Tensor, AdapterParameterRole Role);

/// <summary>
/// A frozen Linear plus one low-rank adapter (and optionally further adapters stacked on the same base).
/// The base weight and bias are registered under their own names <c>weight</c>/<c>bias</c>, so the wrapped
/// layer keeps the upstream state-dict keys (<c>...to_q.weight</c>); adapter tensors sit beside them
/// (<c>...to_q.lora_A</c>). Stacked adapters are child modules named by adapter name
/// (<c>...to_q.style.lora_A</c>). The training forward applies the factors to x (thin matmuls) and never
/// forms a d_out x d_in update.
/// </summary>
public abstract class AdapterLayer : Module<Tensor, Tensor>
{
    private Parameter _weight;
    private Parameter? _bias;
    private readonly List<AdapterLayer> _stacked = new();
    private AdapterLayer? _host;
    private double _mergedFactor;

    protected AdapterLayer(string typeName, Parameter weight, Parameter? bias, AdapterOptions options, string adapterName, bool ownsBase)
        : base(typeName)
    {
        options.Validate();
        if (weight.dim() != 2) throw new ArgumentException($"{typeName}: base weight must be 2-D (d_out x d_in), got [{string.Join(", ", weight.shape)}]");
        if (!weight.is_floating_point()) throw new ArgumentException($"{typeName}: base weight must be floating point, got {weight.dtype}");
        _weight = weight;
        _bias = bias;
        Options = options;
        AdapterName = adapterName;
        OutFeatures = (int)weight.shape[0];
        InFeatures = (int)weight.shape[1];
        if (ownsBase)
        {
            weight.requires_grad = false;
            register_parameter("weight", weight);
            if (bias is not null)
            {
                bias.requires_grad = false;
                register_parameter("bias", bias);
            }
        }
    }

    /// <summary>Registration is explicit (weight, bias, adapter tensors, stacked adapters): reflection over fields would register the host back-reference.</summary>
    protected override void RegisterComponents() { }

    /// <summary>The frozen base weight (a stacked adapter reads its host's). Settable so Module.to(dtype/device) can replace it.</summary>
    public Parameter weight
    {
        get => _host?.weight ?? _weight;
        set { _weight = value; ConditionallyRegisterParameter("weight", value); }
    }

    public Parameter? bias
    {
        get => _host is null ? _bias : _host.bias;
        set { _bias = value; ConditionallyRegisterParameter("bias", value); }
    }

    /// <summary>Module.to(dtype/device) replaced the tensors: drop values cached from the old ones.</summary>
    protected override void _toEpilog(ScalarType? dtype, Device? device, bool non_blocking)
    {
        base._toEpilog(dtype, device, non_blocking);
        InvalidateCaches();
    }
    public int InFeatures { get; }
    public int OutFeatures { get; }
    public AdapterOptions Options { get; }
    public string AdapterName { get; }
    public AdapterMethod Method => Options.Method;
    public int Rank => Options.Rank;
    public double Alpha => Options.Alpha;

    /// <summary>User weight of this adapter (diffusers' lora "scale"); multiplies the method scale s.</summary>
    public double Scale { get; set; } = 1.0;

    /// <summary>The effective s = Scale * alpha / r (or alpha / sqrt r for rsLoRA).</summary>
    public double Scaling => Scale * Options.Scaling;

    public bool IsMerged { get; private set; }

    private bool _enabled = true;
    public bool Enabled
    {
        get => _enabled;
        set
        {
            if (IsMerged && !value) throw new InvalidOperationException($"adapter '{AdapterName}' is merged: unmerge it before disabling it");
            _enabled = value;
        }
    }

    /// <summary>This adapter followed by the ones stacked on it.</summary>
    public IEnumerable<AdapterLayer> Adapters => _stacked.Prepend(this);
    public IReadOnlyList<AdapterLayer> Stacked => _stacked;

    public AdapterLayer? FindAdapter(string name) => Adapters.FirstOrDefault(a => a.AdapterName == name);

    /// <summary>Stacks another adapter on this layer's base; it must have been built on the same base weight with ownsBase = false.</summary>
    public void Stack(AdapterLayer adapter)
    {
        if (_host is not null) throw new InvalidOperationException("stack adapters on the host layer, not on a stacked adapter");
        if (!ReferenceEquals(adapter._weight, weight)) throw new ArgumentException("a stacked adapter must share the host's base weight");
        if (adapter._host is not null || adapter.Stacked.Count > 0) throw new ArgumentException("adapter is already stacked or hosts others");
        if (FindAdapter(adapter.AdapterName) is not null || adapter.AdapterName is "weight" or "bias" || named_parameters(false).Any(p => p.name == adapter.AdapterName))
            throw new ArgumentException($"adapter name '{adapter.AdapterName}' is already used on this layer");
        if (adapter is DoraLinear) throw new ArgumentException("a DoRA adapter rescales the whole weight: it can only be the first adapter of a layer");
        if (adapter.AdapterName.Contains('.')) throw new ArgumentException($"adapter name '{adapter.AdapterName}' must not contain '.'");
        adapter._host = this;
        adapter._bias = null;
        _stacked.Add(adapter);
        register_module(adapter.AdapterName, adapter);
    }

    /// <summary>Takes a stacked adapter off again (e.g. when loading a file fails halfway); it must be unmerged.</summary>
    public void Unstack(AdapterLayer adapter)
    {
        if (!_stacked.Contains(adapter)) throw new ArgumentException($"adapter '{adapter.AdapterName}' is not stacked on this layer");
        if (adapter.IsMerged) throw new InvalidOperationException($"adapter '{adapter.AdapterName}' is merged: unmerge it before removing it");
        _stacked.Remove(adapter);
        register_module(adapter.AdapterName, null!);
        adapter._host = null;
    }

    public override Tensor forward(Tensor input)
    {
        if (_host is not null) throw new InvalidOperationException($"adapter '{AdapterName}' is stacked: call its host layer");
        if (input.shape[^1] != InFeatures)
            throw new ArgumentException($"{GetName()}: input has {input.shape[^1]} features, the layer expects {InFeatures}");
        var active = Adapters.Where(a => a.Enabled && !a.IsMerged).ToList();
        if (active.Count == 0) return nn.functional.linear(input, weight, bias);

        var outShape = input.shape.ToArray();
        outShape[^1] = OutFeatures;
        var x = input.reshape(-1, InFeatures);
        Tensor? baseOut = null;
        Tensor y;
        if (active.Any(a => a.NeedsBaseOutput))
        {
            baseOut = nn.functional.linear(x, weight);
            y = baseOut;
        }
        else y = nn.functional.linear(x, weight, bias);
        // fp32 adapters on a low-precision base (AdapterOptions.ParameterDType): the branches run in the adapter dtype.
        var branchType = active[0].AdapterParameters()[0].Tensor.dtype;
        if (branchType != x.dtype)
        {
            x = x.to_type(branchType);
            y = y.to_type(branchType);
            baseOut = baseOut?.to_type(branchType);
        }
        foreach (var a in active) y = a.AddBranch(x, y, baseOut);
        if (baseOut is not null && bias is not null) y = y + bias;
        return y.to_type(input.dtype).reshape(outShape);
    }

    /// <summary>Returns y plus this adapter's contribution. x is (N x d_in); y is (N x d_out); baseOut = W x (no bias) when requested.</summary>
    protected internal abstract Tensor AddBranch(Tensor x, Tensor y, Tensor? baseOut);

    protected internal virtual bool NeedsBaseOutput => false;

    /// <summary>The adapter's tensors as stored in files, with their roles.</summary>
    public abstract IReadOnlyList<AdapterParameter> AdapterParameters();

    /// <summary>The method's factor on up @ down without the user weight: alpha/r (or alpha/sqrt r), times u(t) for SingLoRA. Files store this.</summary>
    public virtual double MethodFactor => Options.Scaling;

    /// <summary>The factor ΔW is scaled by now: Scale · MethodFactor.</summary>
    public double CurrentFactor => Scale * MethodFactor;

    /// <summary>The additive update ΔW = factor · (up @ down) of shape (d_out x d_in), for merging, export and tests (not used in training).</summary>
    public Tensor DeltaWeight() => DeltaWeight(CurrentFactor);

    protected abstract Tensor DeltaWeight(double factor);

    /// <summary>The equivalent standard LoRA factors (up: d_out x r, down: r x d_in) with ΔW = factor · up @ down.</summary>
    public abstract (Tensor Up, Tensor Down) EquivalentLoraFactors();

    /// <summary>Folds this adapter into the base weight; the forward then skips its branch.</summary>
    public virtual void Merge()
    {
        if (IsMerged) return;
        if (_host is DoraLinear { IsMerged: false })
            throw new InvalidOperationException($"adapter '{AdapterName}' sits on a DoRA layer: merge the DoRA adapter first (MergeAll does)");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _mergedFactor = CurrentFactor;
        weight.add_(DeltaWeight(_mergedFactor).to_type(weight.dtype));
        IsMerged = true;
        _enabled = true;
    }

    /// <summary>Removes exactly what <see cref="Merge"/> added (same factor even if the ramp or scale moved since).</summary>
    public virtual void Unmerge()
    {
        if (!IsMerged) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        weight.sub_(DeltaWeight(_mergedFactor).to_type(weight.dtype));
        IsMerged = false;
    }

    protected bool AnyStackedMerged => _stacked.Any(a => a.IsMerged);

    protected void MarkMerged(bool merged) { IsMerged = merged; if (merged) _enabled = true; }

    /// <summary>Merges this adapter and every stacked one, in order.</summary>
    public void MergeAll() { foreach (var a in Adapters) a.Merge(); }

    /// <summary>Unmerges in reverse order of merging.</summary>
    public void UnmergeAll() { foreach (var a in Adapters.Reverse()) a.Unmerge(); }

    /// <summary>
    /// The one per-step hook: call after every optimizer step with the number of steps taken (and on resume with the
    /// restored count), not per forward. Sets SingLoRA's ramp step t and recomputes SDS-LoRA's bases (one batched
    /// factorization for all layers). Stacked adapters included.
    /// </summary>
    public static void OnOptimizerStep(IEnumerable<AdapterLayer> layers, long stepsTaken)
    {
        var all = layers.SelectMany(l => l.Adapters).Distinct().ToList();
        foreach (var s in all.OfType<SingLoraLinear>()) s.StepCount = stepsTaken;
        SdsLoraLinear.RefreshBases(all.OfType<SdsLoraLinear>());
    }

    /// <summary>Drops cached values derived from the adapter tensors (call after loading tensors into them).</summary>
    public virtual void InvalidateCaches() { }

    /// <summary>y + a @ b in one fused op.</summary>
    internal static Tensor AddMm(Tensor y, Tensor a, Tensor b) => torch.addmm(y, a, b, 1, 1);

    protected Tensor DropoutOnBranch(Tensor x) =>
        Options.Dropout > 0 && training ? nn.functional.dropout(x, Options.Dropout, true) : x;

    protected Parameter NewParameter(long[] shape)
    {
        // Layers outlive any dispose scope they are created in (injection and import may run inside one).
        using var scope = NewDisposeScope();
        var p = new Parameter(zeros(shape, Options.ParameterDType ?? weight.dtype, weight.device), Options.Trainable);
        p.DetachFromDisposeScope();
        return p;
    }

    protected void ThrowIfMerged(string what)
    {
        if (IsMerged) throw new InvalidOperationException($"adapter '{AdapterName}' is merged: unmerge before {what}");
    }
}
