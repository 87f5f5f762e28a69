using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// Small factories and activations shared by the models. Every layer is built on the CPU, whatever TorchSharp's
/// process-wide default device is (a host may have set it): initial draws are then the same on every machine (the
/// embedded default model is seeded random weights), and <see cref="ModelPlacement"/> moves the loaded model.
/// </summary>
public static class Layers
{
    public static Linear Linear(long inFeatures, long outFeatures, bool hasBias = true) => nn.Linear(inFeatures, outFeatures, hasBias, device: CPU);

    public static LayerNorm LayerNorm(long features, double eps) => nn.LayerNorm(features, eps, device: CPU);

    public static Embedding Embedding(long count, long features) => nn.Embedding(count, features, device: CPU);

    /// <summary>GroupNorm with weight 1 and bias 0 (TorchSharp 0.107 leaves them uninitialised).</summary>
    public static GroupNorm GroupNorm(int groups, int channels, double eps)
    {
        if (groups <= 0 || channels % groups != 0)
            throw new ArgumentException($"GroupNorm: {channels} channels cannot be split into {groups} groups.");
        var norm = nn.GroupNorm(groups, channels, eps, affine: true, device: CPU);
        using (no_grad())
        {
            norm.weight!.fill_(1);
            norm.bias!.fill_(0);
        }
        return norm;
    }

    /// <summary>The activations diffusers' <c>get_activation</c> knows ("swish" and "silu" are the same function).</summary>
    public static Tensor Activation(string name, Tensor x) => name switch
    {
        "silu" or "swish" => nn.functional.silu(x),
        "gelu" => nn.functional.gelu(x),
        "mish" => nn.functional.mish(x),
        "relu" => nn.functional.relu(x),
        _ => throw new NotSupportedException($"activation function '{name}' is not supported"),
    };

    public static string CheckActivation(string name, string source) =>
        name is "silu" or "swish" or "gelu" or "mish" or "relu" ? name
            : throw new InvalidDataException($"{source}: act_fn '{name}' is not supported (silu, swish, gelu, mish, relu).");
}
