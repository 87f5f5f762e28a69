using static TorchSharp.torch;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>
/// Adapter tensors must hold finite values: a NaN or infinity read from a file would surface later, mid-generation or
/// mid-training, as NaN images or a failed SVD / Cholesky of SDS-LoRA's bases, far from the file that caused it.
/// </summary>
internal static class FiniteTensors
{
    public static void Ensure(string path, string name, Tensor t)
    {
        using var _ = no_grad();
        using var finite = isfinite(t).all();
        if (!finite.item<bool>()) throw new InvalidDataException($"{path}: tensor '{name}' holds NaN or infinite values");
    }
}
