using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>
/// diffusers/PEFT layout: <c>unet.&lt;path&gt;.lora_A.weight</c> / <c>.lora_B.weight</c>, DoRA <c>.lora_magnitude_vector</c>,
/// <c>text_encoder.</c> for the text encoder. No alpha is stored (loaders use scale 1), so s is folded into B;
/// SingLoRA's s·u is folded symmetrically: up = sqrt(s u) A_out, down = sqrt(s u) A_inᵀ.
/// </summary>
public static class PeftFormat
{
    public static void Export(string path, IReadOnlyList<AdapterEntry> entries)
    {
        if (entries.Count == 0) throw new ArgumentException($"{path}: no adapters to export");
        var tensors = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();
        foreach (var e in entries)
        {
            var (up, down) = e.Adapter.EquivalentLoraFactors();
            double factor = e.Adapter.MethodFactor;
            if (e.Adapter is SingLoraLinear)
            {
                double root = Math.Sqrt(Math.Abs(factor));
                (up, down) = (up * (root * Math.Sign(factor)), down * root);
            }
            else up = up * factor;
            tensors[e.Key + ".lora_A.weight"] = AdapterComponents.Cpu(down);
            tensors[e.Key + ".lora_B.weight"] = AdapterComponents.Cpu(up);
            if (e.Adapter is DoraLinear dora)
                tensors[e.Key + ".lora_magnitude_vector"] = AdapterComponents.Cpu(dora.lora_magnitude_vector);
        }
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
