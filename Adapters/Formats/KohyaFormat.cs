using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>
/// kohya-ss / A1111 / ComfyUI layout: <c>lora_unet_&lt;path with . as _&gt;.lora_down.weight</c> (r x d_in),
/// <c>.lora_up.weight</c> (d_out x r), <c>.alpha</c> (0-d float32, scale = alpha / rank), <c>lora_te_</c> for the text
/// encoder, DoRA's magnitude as <c>.dora_scale</c> (d_out x 1). Every method is written as a standard two-matrix
/// LoRA: SingLoRA as up = A_out, down = A_inᵀ, alpha = alpha_train · u(t).
/// </summary>
public static class KohyaFormat
{
    public static void Export(string path, IReadOnlyList<AdapterEntry> entries)
    {
        if (entries.Count == 0) throw new ArgumentException($"{path}: no adapters to export");
        var tensors = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();
        foreach (var e in entries)
        {
            var name = AdapterComponents.KohyaName(e.Component, e.Path);
            var (up, down) = e.Adapter.EquivalentLoraFactors();
            double factor = e.Adapter.MethodFactor;
            tensors[name + ".lora_down.weight"] = AdapterComponents.Cpu(down);
            tensors[name + ".lora_up.weight"] = AdapterComponents.Cpu(up);
            tensors[name + ".alpha"] = tensor((float)(factor * e.Adapter.Rank), device: CPU);
            if (e.Adapter is DoraLinear dora)
                tensors[name + ".dora_scale"] = AdapterComponents.Cpu(dora.lora_magnitude_vector.unsqueeze(1));
        }
        var ranks = entries.Select(e => e.Adapter.Rank).Distinct().ToList();
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["ss_network_module"] = "networks.lora" };
        if (ranks.Count == 1) meta["ss_network_dim"] = ranks[0].ToString(System.Globalization.CultureInfo.InvariantCulture);
        SafetensorsWriter.Write(path, tensors, meta);
    }
}
