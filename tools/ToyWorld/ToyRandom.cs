namespace DiffusionPeft.ToyWorld;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014), keyed by several values. Everything random in the toy world comes from it,
/// never from System.Random or hash codes, so a scene is the same on every machine and .NET version.
/// </summary>
public struct ToyRandom
{
    private ulong _state;

    public ToyRandom(ulong state) => _state = state;

    /// <summary>A generator keyed by several values (world seed, stream, index...), each mixed in turn.</summary>
    public static ToyRandom Keyed(params ReadOnlySpan<ulong> keys)
    {
        var g = new ToyRandom(0x243F6A8885A308D3UL);
        foreach (var k in keys) g = new ToyRandom(g.NextUInt64() ^ k);
        return g;
    }

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>True with probability <paramref name="p"/>.</summary>
    public bool Chance(double p) => NextDouble() < p;

    /// <summary>Uniform integer in [0, n), unbiased (rejection).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"n must be positive, got {n}");
        ulong bound = (ulong)n, limit = ulong.MaxValue - ulong.MaxValue % bound;
        ulong x;
        do x = NextUInt64(); while (x >= limit);
        return (int)(x % bound);
    }

    /// <summary>Uniform integer in [min, max], both included.</summary>
    public int NextInt(int min, int max) => min + NextInt(max - min + 1);

    public T Pick<T>(IReadOnlyList<T> items) => items[NextInt(items.Count)];
}
