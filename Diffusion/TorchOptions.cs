using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion;

/// <summary>Parses the `--device` and `--dtype` values every command takes.</summary>
public static class TorchOptions
{
    public static Device ParseDevice(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return CPU;
        if (t == "cuda" || t.StartsWith("cuda:"))
        {
            if (!cuda.is_available())
                throw new NotSupportedException($"--device {text}: CUDA is not available in this build (build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU).");
            return new Device(t);
        }
        throw new ArgumentException($"--device '{text}': expected cpu, cuda or cuda:N.");
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
