using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Platform;

/// <summary>
/// What a training run on CUDA needs for the exact resume the CPU gives: libtorch's deterministic algorithms
/// (warn-only, so an op without a deterministic kernel still runs), deterministic cuDNN with its per-shape search off,
/// and cuBLAS's fixed workspace (CUBLAS_WORKSPACE_CONFIG=:4096:8, which libtorch requires with deterministic algorithms
/// and cuBLAS reads when it starts). Without them CUDA kernels that accumulate with atomics (attention backward among
/// them) give different low bits run to run, so no two runs, resumed or not, are equal. DPEFT_CUDA_DETERMINISTIC=0
/// turns this off for speed.
/// </summary>
public static partial class CudaReproducibility
{
    public const string Variable = "DPEFT_CUDA_DETERMINISTIC";

    /// <summary>Call before the first CUDA computation of a training process; returns what was set, for the log.</summary>
    public static string? ForTraining(Device device)
    {
        if (device.type != DeviceType.CUDA) return null;
        if (Environment.GetEnvironmentVariable(Variable) == "0")
            return $"{Variable}=0: CUDA kernels may differ run to run; a resumed run is close to, not equal to, an uninterrupted one";
        if (Environment.GetEnvironmentVariable("CUBLAS_WORKSPACE_CONFIG") is null)
        {
            Environment.SetEnvironmentVariable("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
            if (OperatingSystem.IsLinux()) Setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);   // cuBLAS reads the native environment
        }
        if (!LibTorchContext.Available)
            return "deterministic CUDA algorithms could not be switched on (libtorch's context switches are not exported): resumes may differ in the last bits";
        LibTorchContext.SetDeterministicAlgorithms(true, warnOnly: true);
        LibTorchContext.DeterministicCuDnn = true;
        LibTorchContext.BenchmarkCuDnn = false;
        return $"deterministic CUDA algorithms on, for exact resumes ({Variable}=0 for speed)";
    }

    [LibraryImport("libc.so.6", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Setenv(string name, string value, int overwrite);
}
