using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters;

/// <summary>The two-matrix shape shared by LoRA, DoRA and SDS-LoRA: A (r x d_in), B (d_out x r), ΔW = s B A.</summary>
public abstract class LowRankPairLayer : AdapterLayer
{
    protected LowRankPairLayer(string typeName, Parameter weight, Parameter? bias, AdapterOptions options, string adapterName, bool ownsBase)
        : base(typeName, weight, bias, options, adapterName, ownsBase)
    {
        _a = NewParameter([options.Rank, InFeatures]);
        _b = NewParameter([OutFeatures, options.Rank]);
        using (no_grad())
        {
            if (options.Init == LoraInit.Gaussian) nn.init.normal_(lora_A, 0, 1.0 / options.Rank);
            else nn.init.kaiming_uniform_(lora_A, Math.Sqrt(5));
        }
        register_parameter("lora_A", lora_A);
        register_parameter("lora_B", lora_B);
    }

    private Parameter _a, _b;

    public Parameter lora_A { get => _a; set { _a = value; ConditionallyRegisterParameter(nameof(lora_A), value); InvalidateCaches(); } }
    public Parameter lora_B { get => _b; set { _b = value; ConditionallyRegisterParameter(nameof(lora_B), value); InvalidateCaches(); } }

    public override IReadOnlyList<AdapterParameter> AdapterParameters() =>
    [
        new("lora_A", lora_A, AdapterParameterRole.A),
        new("lora_B", lora_B, AdapterParameterRole.B),
    ];

    protected override Tensor DeltaWeight(double factor) => lora_B.detach().mm(lora_A.detach()).mul(factor);

    public override (Tensor Up, Tensor Down) EquivalentLoraFactors() => (lora_B.detach(), lora_A.detach());

    /// <summary>y + s B (A x): s is applied to the small (d_in x r) factor, the add is fused into addmm.</summary>
    protected Tensor AddLoraBranch(Tensor x, Tensor y) =>
        AddMm(y, DropoutOnBranch(x).mm(lora_A.t().mul(Scaling)), lora_B.t());
}
