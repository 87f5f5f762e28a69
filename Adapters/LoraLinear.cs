using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters;

/// <summary>LoRA (Hu et al. 2021) and rsLoRA: y = W0 x + b + s B A x.</summary>
public sealed class LoraLinear : LowRankPairLayer
{
    public LoraLinear(Parameter weight, Parameter? bias, AdapterOptions options, string adapterName = "default", bool ownsBase = true)
        : base(nameof(LoraLinear), weight, bias, options.Method.IsLoraLayer() ? options : options with { Method = AdapterMethod.Lora }, adapterName, ownsBase) { }

    protected internal override Tensor AddBranch(Tensor x, Tensor y, Tensor? baseOut) => AddLoraBranch(x, y);
}
