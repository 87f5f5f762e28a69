using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Platform;

/// <summary>
/// Stands in for a second device on a machine that has only the CPU. While armed, TorchSharp's process-wide default
/// device is <c>meta</c>, so a tensor created without a device is a data-less meta tensor instead of a CPU one. Code
/// that runs on the CPU with everything placed explicitly is unaffected; a tensor made without a device (the bug that
/// makes CUDA runs fail with "Expected all tensors to be on the same device, cuda:0 and cpu") fails loudly: mixed
/// with the model's tensors ("... meta and cpu"), read (.item(), bytes), or in an op without a meta kernel.
/// Stricter than CUDA in one respect: CUDA accepts a 0-d CPU tensor beside its own, the canary does not.
/// Tests run one at a time (xunit.runner.json), so the global switch cannot leak into another test.
/// </summary>
public sealed class PlacementCanary : IDisposable
{
    private readonly Device _previous;

    private PlacementCanary()
    {
        _previous = get_default_device();
        set_default_device(new Device(DeviceType.META));
    }

    public static PlacementCanary Arm() => new();

    public void Dispose() => set_default_device(_previous);
}
