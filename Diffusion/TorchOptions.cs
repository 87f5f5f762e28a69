using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion;

/// <summary>Parses the `--device` and `--dtype` values every command takes.</summary>
public static class TorchOptions
{
    /// <param name="requireAvailable">Also check that the device exists here (configs are validated without it).</param>
    public static Device ParseDevice(string text, bool requireAvailable = true)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return CPU;
        bool isCuda = t == "cuda" || (t.StartsWith("cuda:", StringComparison.Ordinal) && t.Length > 5 && t[5..].All(char.IsAsciiDigit));
        if (!isCuda) throw new ArgumentException($"--device '{text}': expected cpu, cuda or cuda:N.");
        if (requireAvailable && !cuda.is_available())
            throw new NotSupportedException($"--device {text}: CUDA is not available in this build (build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU).");
        return new Device(t);
    }

    public static ScalarType ParseDType(string text) => text.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" or "float" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "fp16" or "float16" or "half" => ScalarType.Float16,
        _ => throw new ArgumentException($"--dtype '{text}': expected fp32 or bf16 (fp16 is accepted but unusably slow on CPU)."),
    };

    public static string Name(ScalarType t) => t switch
    {
        ScalarType.Float32 => "fp32",
        ScalarType.BFloat16 => "bf16",
        ScalarType.Float16 => "fp16",
        ScalarType.Float64 => "fp64",
        _ => t.ToString(),
    };
}
