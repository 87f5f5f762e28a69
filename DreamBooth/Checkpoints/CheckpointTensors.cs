using DiffusionPeft.Diffusion.IO;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Checkpoints;

/// <summary>Reads a checkpoint's .safetensors file into existing tensors: every name and shape must match, and any fault
/// (a damaged file, a missing or misshapen tensor) is an <see cref="InvalidCheckpointException"/> naming the file.</summary>
public static class CheckpointTensors
{
    /// <returns>The file's metadata.</returns>
    public static IReadOnlyDictionary<string, string> ReadInto(string path, IReadOnlyList<(string Name, Tensor Target)> targets)
    {
        try
        {
            using var file = SafetensorsFile.Open(path);
            StateDictLoader.LoadInto(file, targets, message => new InvalidCheckpointException(message));
            return file.Metadata;
        }
        catch (InvalidSafetensorsException ex) { throw new InvalidCheckpointException(ex.Message); }
    }
}
