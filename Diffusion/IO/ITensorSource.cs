using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.IO;

/// <summary>
/// Named tensors that can be read one at a time: a safetensors file, a sharded set of them, or a renamed
/// view of one (single-file checkpoints). Loading code depends on this, not on where the bytes live.
/// </summary>
public interface ITensorSource
{
    /// <summary>Where the tensors come from, for error messages (usually file paths).</summary>
    string Description { get; }
    IReadOnlyCollection<string> Keys { get; }
    bool Contains(string key);
    long[] ShapeOf(string key);
    /// <summary>Reads a tensor to the CPU, converted to <paramref name="dtype"/> when given.</summary>
    Tensor Read(string key, ScalarType? dtype = null);
}
