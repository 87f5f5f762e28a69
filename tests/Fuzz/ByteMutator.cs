using System.Buffers.Binary;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>Format-blind mutations of a file's bytes: truncation, bit flips, insertions, deletions, repeats and interesting integers.</summary>
public static class ByteMutator
{
    private static readonly uint[] Interesting = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF];

    public static (byte[] Bytes, string What) Mutate(byte[] source, Random r)
    {
        var b = source.ToList();
        int n = b.Count;
        int At() => n == 0 ? 0 : r.Next(n);
        switch (r.Next(7))
        {
            case 0:
            {
                int at = At();
                return (source[..at], $"truncated to {at} of {n} bytes");
            }
            case 1:
            {
                int flips = 1 + r.Next(8);
                var c = (byte[])source.Clone();
                for (int i = 0; i < flips && n > 0; i++) c[At()] ^= (byte)(1 << r.Next(8));
                return (c, $"{flips} bit flips");
            }
            case 2:
            {
                int at = At(), len = 1 + r.Next(64);
                var ins = new byte[len];
                r.NextBytes(ins);
                b.InsertRange(at, ins);
                return (b.ToArray(), $"{len} random bytes inserted at {at}");
            }
            case 3:
            {
                int at = At(), len = Math.Min(n - at, 1 + r.Next(256));
                b.RemoveRange(at, len);
                return (b.ToArray(), $"{len} bytes deleted at {at}");
            }
            case 4:
            {
                int at = At(), len = Math.Min(n - at, 1 + r.Next(512));
                b.InsertRange(at, source.AsSpan(at, len).ToArray());
                return (b.ToArray(), $"{len} bytes repeated at {at}");
            }
            default:
            {
                var c = (byte[])source.Clone();
                int at = Math.Max(0, At() - 4);
                uint v = Interesting[r.Next(Interesting.Length)];
                if (at + 4 > c.Length) return (c, "unchanged (too short)");
                if (r.Next(2) == 0) BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(at), v); else BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(at), v);
                return (c, $"0x{v:X} written at {at}");
            }
        }
    }
}
