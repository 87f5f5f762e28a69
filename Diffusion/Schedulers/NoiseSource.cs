using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// Where stochastic samplers (DDPM, DDIM with eta &gt; 0, Euler ancestral) take their standard-normal noise from:
/// a seeded generator for generation, or given tensors for replaying a recorded run.
/// </summary>
public abstract class NoiseSource
{
    /// <summary>A standard-normal tensor of <paramref name="shape"/> on <paramref name="device"/>.</summary>
    public abstract Tensor Next(long[] shape, ScalarType dtype, Device device);

    public Tensor NextLike(Tensor t) => Next(t.shape, t.dtype, t.device);
}

/// <summary>
/// Draws with a CPU <c>torch.Generator</c> seeded once, always in float32 on the CPU, then moves the result to the
/// requested device and dtype, so the values depend only on the seed and the sequence of shapes drawn
/// (not on the device or the thread count).
/// </summary>
public sealed class SeededNoiseSource : NoiseSource, IDisposable
{
    private readonly Generator _generator;

    public SeededNoiseSource(long seed)
    {
        Seed = seed;
        _generator = new Generator((ulong)seed, CPU);
    }

    public long Seed { get; }

    public override Tensor Next(long[] shape, ScalarType dtype, Device device)
    {
        var cpu = randn(shape, ScalarType.Float32, CPU, generator: _generator);
        if (device.type == DeviceType.CPU && dtype == ScalarType.Float32) return cpu;
        using (cpu) return cpu.to(dtype, device);
    }

    public void Dispose() => _generator.Dispose();
}

/// <summary>Returns the given tensors in order (e.g. the noise a reference run consumed); drawing past the end or with a different shape is an error.</summary>
public sealed class ReplayNoiseSource : NoiseSource
{
    private readonly IReadOnlyList<Tensor> _tensors;

    public ReplayNoiseSource(IEnumerable<Tensor> tensors) => _tensors = tensors.ToList();

    public int Consumed { get; private set; }
    public int Remaining => _tensors.Count - Consumed;

    public override Tensor Next(long[] shape, ScalarType dtype, Device device)
    {
        if (Consumed >= _tensors.Count)
            throw new InvalidOperationException($"replay noise exhausted: all {_tensors.Count} recorded tensors were already used.");
        var t = _tensors[Consumed];
        if (!t.shape.SequenceEqual(shape))
            throw new InvalidOperationException($"replay noise #{Consumed} has shape [{string.Join(", ", t.shape)}] but [{string.Join(", ", shape)}] was requested.");
        Consumed++;
        return t.to(dtype, device);
    }
}

/// <summary>
/// One generator per image seeded with its own seed: image k's initial latents (its first draw) and its share of
/// every later sampler draw come from it alone, so image k is the same whatever batch it was made in.
/// </summary>
public sealed class PerImageNoise(IReadOnlyList<long> seeds) : NoiseSource, IDisposable
{
    private readonly SeededNoiseSource[] _sources = seeds.Select(s => new SeededNoiseSource(s)).ToArray();

    public override Tensor Next(long[] shape, ScalarType dtype, Device device)
    {
        if (shape.Length == 0 || shape[0] != _sources.Length)
            throw new InvalidOperationException($"noise of shape [{string.Join(", ", shape)}] requested for {_sources.Length} images.");
        long[] one = [1, .. shape[1..]];
        using var scope = NewDisposeScope();
        return cat(_sources.Select(s => s.Next(one, dtype, device)).ToArray(), 0).MoveToOuterDisposeScope();
    }

    public void Dispose() { foreach (var s in _sources) s.Dispose(); }
}
