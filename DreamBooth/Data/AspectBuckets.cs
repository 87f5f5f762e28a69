namespace DiffusionPeft.DreamBooth.Data;

public sealed record Bucket(int Width, int Height)
{
    public double AspectRatio => (double)Width / Height;
    public override string ToString() => $"{Width}x{Height}";
}

/// <summary>
/// Aspect-ratio buckets as kohya's sd-scripts <c>make_bucket_resolutions</c>: sides are multiples of 64
/// between a minimum and a maximum side, each bucket's area at most resolution², and every image goes to the
/// bucket of nearest aspect ratio (<c>argmin |bucket_ar - image_ar|</c>, ties to the first in sorted order).
/// Defaults scale kohya's (256..1024 at 512): min = max(64, resolution/2), max = 2·resolution.
/// </summary>
public sealed class AspectBuckets
{
    public const int Divisible = 64;
    public IReadOnlyList<Bucket> Buckets { get; }

    public AspectBuckets(int resolution, int? minSide = null, int? maxSide = null)
    {
        if (resolution < Divisible || resolution % Divisible != 0)
            throw new ArgumentException($"bucket resolution must be a multiple of {Divisible}, got {resolution}");
        int min = minSide ?? Math.Max(Divisible, resolution / 2 / Divisible * Divisible);
        int max = maxSide ?? 2 * resolution;
        long maxArea = (long)resolution * resolution;
        var set = new HashSet<(int W, int H)>();
        int square = (int)(Math.Sqrt(maxArea) / Divisible) * Divisible;
        set.Add((square, square));
        for (int w = min; w <= max; w += Divisible)
        {
            int h = (int)Math.Min(max, maxArea / w / Divisible * Divisible);
            if (h < min) continue;
            set.Add((w, h));
            set.Add((h, w));
        }
        Buckets = set.OrderBy(b => b.W).ThenBy(b => b.H).Select(b => new Bucket(b.W, b.H)).ToArray();
    }

    public int IndexFor(int width, int height)
    {
        double ar = (double)width / height;
        int best = 0;
        for (int i = 1; i < Buckets.Count; i++)
            if (Math.Abs(Buckets[i].AspectRatio - ar) < Math.Abs(Buckets[best].AspectRatio - ar)) best = i;
        return best;
    }

    public Bucket For(int width, int height) => Buckets[IndexFor(width, height)];
}
