using DiffusionPeft.Adapters;
using TorchSharp.Modules;

namespace DiffusionPeft.Experiments.AdapterMethods;

/// <summary>One adapter method under test: the layer options plus the optimizer's LoRA+ ratio (1 = plain AdamW).</summary>
public sealed record MethodSpec(string Name, AdapterOptions Options, double LoraPlusLambda = 1, SdsBasis? ExperimentalSdsBasis = null)
{
    /// <summary>The library layer for the options, or the experiment-local SDS-LoRA variant when <see cref="ExperimentalSdsBasis"/> is set.</summary>
    public AdapterLayer Create(Parameter weight) =>
        ExperimentalSdsBasis is SdsBasis basis ? new SdsVariantLinear(weight, Options, basis) : AdapterInjector.Create(Options, weight, null);

    /// <summary>LoRA, rsLoRA, DoRA, LoRA+, SingLoRA (one run per init scale) and SDS-LoRA, all at rank r with alpha = r.</summary>
    public static IReadOnlyList<MethodSpec> All(SweepConfig c)
    {
        int r = c.AdapterRank;
        var lora = new AdapterOptions { Method = AdapterMethod.Lora, Rank = r, Alpha = r };
        var list = new List<MethodSpec>
        {
            new("LoRA", lora),
            new("rsLoRA", lora with { Method = AdapterMethod.RsLora }),
            new("DoRA", lora with { Method = AdapterMethod.Dora }),
            new($"LoRA+ (λ={c.LoraPlusLambda:0.#})", lora, c.LoraPlusLambda),
        };
        foreach (var scale in c.SingLoraInitScales)
            list.Add(new($"SingLoRA (init×{scale:0.###})", lora with { Method = AdapterMethod.SingLora, RampSteps = c.SingLoraRamp, InitScale = scale }));
        var sds = lora with { Method = AdapterMethod.SdsLora };
        list.Add(new("SDS-LoRA", sds));
        if (c.SdsVariants)
        {
            list.Add(new("SDS-LoRA* (QR, diag R ≥ 0)", sds, ExperimentalSdsBasis: SdsBasis.QrPositiveDiagonal));
            list.Add(new("SDS-LoRA* (polar)", sds, ExperimentalSdsBasis: SdsBasis.Polar));
        }
        return list;
    }
}
