using DiffusionPeft.Diffusion.Platform;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Platform;

/// <summary>libtorch's global switches reached through their exported symbols (the CUDA determinism a training run sets).</summary>
public sealed class LibTorchContextTests
{
    [Fact]
    public void DeterminismSwitchesAreReachableAndReadBack()
    {
        Assert.True(LibTorchContext.Available, "at::Context's switches are not exported by this libtorch");
        bool algorithms = LibTorchContext.DeterministicAlgorithms, cudnn = LibTorchContext.DeterministicCuDnn, benchmark = LibTorchContext.BenchmarkCuDnn;
        try
        {
            LibTorchContext.SetDeterministicAlgorithms(true, warnOnly: true);
            LibTorchContext.DeterministicCuDnn = true;
            LibTorchContext.BenchmarkCuDnn = true;
            Assert.True(LibTorchContext.DeterministicAlgorithms && LibTorchContext.DeterministicCuDnn && LibTorchContext.BenchmarkCuDnn);
            Assert.Equal(6f, (ones(2, 3, device: CPU)).sum().item<float>());
        }
        finally
        {
            LibTorchContext.SetDeterministicAlgorithms(algorithms, warnOnly: false);
            LibTorchContext.DeterministicCuDnn = cudnn;
            LibTorchContext.BenchmarkCuDnn = benchmark;
        }
        Assert.Null(CudaReproducibility.ForTraining(CPU));   // nothing to switch for a CPU run
    }
}
