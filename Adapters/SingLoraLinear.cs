using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters;

/// <summary>
/// SingLoRA (Bensaïd et al. 2025): one matrix A (n x r), n = max(d_in, d_out); A_out = A[:d_out], A_in = A[:d_in]
/// (views, so autograd sums the gradient of shared rows); ΔW = s u(t) A_out A_inᵀ with u(t) = min(t / T, 1) and
/// t the number of optimizer steps, kept in the buffer <c>singlora_step</c> so checkpoints carry the ramp.
/// </summary>
public sealed class SingLoraLinear : AdapterLayer
{
    public SingLoraLinear(Parameter weight, Parameter? bias, AdapterOptions options, string adapterName = "default", bool ownsBase = true)
        : base(nameof(SingLoraLinear), weight, bias, options with { Method = AdapterMethod.SingLora }, adapterName, ownsBase)
    {
        int n = Math.Max(InFeatures, OutFeatures);
        _a = NewParameter([n, options.Rank]);
        using (no_grad())
        {
            // kaiming-uniform(a = sqrt 5) on (n x r): fan_in = r, bound 1/sqrt(r), as public implementations do.
            nn.init.kaiming_uniform_(_a, Math.Sqrt(5));
            if (options.InitScale != 1.0) _a.mul_(options.InitScale);
        }
        register_parameter("singlora_A", singlora_A);
        _step = zeros([], ScalarType.Int64, weight.device).DetachFromDisposeScope();
        register_buffer("singlora_step", _step);
    }

    private Parameter _a;
    private Tensor _step;

    public Parameter singlora_A { get => _a; set { _a = value; ConditionallyRegisterParameter(nameof(singlora_A), value); } }

    /// <summary>Optimizer steps taken (0-d int64 buffer, saved with the adapter).</summary>
    public Tensor singlora_step { get => _step; set { _step = value; ConditionallyRegisterBuffer(nameof(singlora_step), value); } }

    public long StepCount
    {
        get => singlora_step.item<long>();
        set { using var _ = no_grad(); singlora_step.fill_(value); }
    }

    public double Ramp => RampAt(StepCount, Options.RampSteps);

    public static double RampAt(long step, long rampSteps) => rampSteps <= 0 ? 1.0 : Math.Min((double)step / rampSteps, 1.0);

    public override double MethodFactor => Options.Scaling * Ramp;


    public override IReadOnlyList<AdapterParameter> AdapterParameters() => [new("singlora_A", singlora_A, AdapterParameterRole.Single)];

    // A whole-matrix narrow is still an autograd node (its backward allocates and copies): square layers skip it.
    private Tensor AIn => InFeatures == singlora_A.shape[0] ? singlora_A : singlora_A.narrow(0, 0, InFeatures);
    private Tensor AOut => OutFeatures == singlora_A.shape[0] ? singlora_A : singlora_A.narrow(0, 0, OutFeatures);

    protected internal override Tensor AddBranch(Tensor x, Tensor y, Tensor? baseOut) =>
        AddMm(y, DropoutOnBranch(x).mm(AIn.mul(CurrentFactor)), AOut.t());

    protected override Tensor DeltaWeight(double factor) => AOut.detach().mm(AIn.detach().t()).mul(factor);

    /// <summary>up = A_out (d_out x r), down = A_inᵀ (r x d_in), so ΔW = s u · up @ down.</summary>
    public override (Tensor Up, Tensor Down) EquivalentLoraFactors() => (AOut.detach(), AIn.detach().t());
}
