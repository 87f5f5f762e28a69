using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// The training loop's random stream (noise, timesteps, dropout of the objective): a CPU torch.Generator
/// seeded from the run seed, whose full state is saved in checkpoints, so a resumed run draws the same numbers.
/// Tensors are drawn on the CPU and moved, so results do not depend on the device.
/// </summary>
public sealed class TrainingRng : IDisposable
{
    public Generator Generator { get; }

    public TrainingRng(long seed) => Generator = new Generator((ulong)seed, CPU);

    public Tensor Randn(long[] shape, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        var t = randn(shape, dtype: dtype, device: CPU, generator: Generator);
        return device is null || device.type == DeviceType.CPU ? t : MoveAndDispose(t, device);
    }

    /// <summary>Uniform [0, 1) draws, made on the CPU and moved to <paramref name="device"/>.</summary>
    public Tensor Rand(long[] shape, Device? device = null)
    {
        var t = rand(shape, ScalarType.Float32, CPU, generator: Generator);
        return device is null || device.type == DeviceType.CPU ? t : MoveAndDispose(t, device);
    }

    /// <summary>Uniform integers in [low, high).</summary>
    public Tensor RandInt(long low, long high, long[] shape, Device? device = null)
    {
        var t = randint(low, high, shape, dtype: ScalarType.Int64, device: CPU, generator: Generator);
        return device is null || device.type == DeviceType.CPU ? t : MoveAndDispose(t, device);
    }

    public byte[] GetState()
    {
        using var s = Generator.get_state();
        return s.bytes.ToArray();
    }

    public void SetState(byte[] state)
    {
        using var s = tensor(state, [state.Length], ScalarType.Byte, CPU);
        Generator.set_state(s);
    }

    public void Dispose() => Generator.Dispose();

    private static Tensor MoveAndDispose(Tensor t, Device device)
    {
        var moved = t.to(device);
        t.Dispose();
        return moved;
    }
}
