namespace DiffusionPeft.Core.Numerics;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a tiny counter-based generator we control completely, so data order and
/// augmentation are a pure function of (seed, epoch, item) and need no saved state to resume, and the toy world's
/// scenes are the same on every machine and .NET version (never System.Random or hash codes).
/// </summary>
public struct SplitMix64(ulong state)
{
    private ulong _state = state;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n), unbiased (rejection).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"n must be positive, got {n}");
        ulong bound = (ulong)n, limit = ulong.MaxValue - ulong.MaxValue % bound;
        ulong x;
        do x = NextUInt64(); while (x >= limit);
        return (int)(x % bound);
    }

    /// <summary>A generator keyed by several values (seed, stream, epoch, item...), each mixed in turn.</summary>
    public static SplitMix64 Keyed(params ReadOnlySpan<ulong> keys) => KeyedFrom(0x6A09E667F3BCC909UL, keys);

    /// <summary>As <see cref="Keyed"/> from another starting state: one family of streams per origin.</summary>
    public static SplitMix64 KeyedFrom(ulong origin, ReadOnlySpan<ulong> keys)
    {
        var g = new SplitMix64(origin);
        foreach (var k in keys) g = new SplitMix64(g.NextUInt64() ^ k);
        return g;
    }

    /// <summary>Fisher–Yates permutation of 0..n-1.</summary>
    public int[] Permutation(int n)
    {
        var p = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
