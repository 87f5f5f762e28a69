using DiffusionPeft.Core.Numerics;

namespace DiffusionPeft.ToyWorld;

/// <summary>
/// The toy world's generator: <see cref="SplitMix64"/> keyed from its own origin (world seed, stream, index...), with
/// the draws scenes need. Everything random in the toy world comes from it, so a scene is the same on every machine.
/// </summary>
public struct ToyRandom
{
    private SplitMix64 _g;

    public ToyRandom(ulong state) => _g = new SplitMix64(state);

    private ToyRandom(SplitMix64 g) => _g = g;

    /// <summary>A generator keyed by several values (world seed, stream, index...), each mixed in turn.</summary>
    public static ToyRandom Keyed(params ReadOnlySpan<ulong> keys) => new(SplitMix64.KeyedFrom(0x243F6A8885A308D3UL, keys));

    public ulong NextUInt64() => _g.NextUInt64();

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => _g.NextDouble();

    /// <summary>True with probability <paramref name="p"/>.</summary>
    public bool Chance(double p) => NextDouble() < p;

    /// <summary>Uniform integer in [0, n), unbiased (rejection).</summary>
    public int NextInt(int n) => _g.NextInt(n);

    /// <summary>Uniform integer in [min, max], both included.</summary>
    public int NextInt(int min, int max) => min + NextInt(max - min + 1);

    public T Pick<T>(IReadOnlyList<T> items) => items[NextInt(items.Count)];
}
