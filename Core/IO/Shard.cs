namespace DiffusionPeft.Core.IO;

/// <summary>
/// Part K of N of a deterministic split (Slurm array jobs, Kubernetes indexed jobs): item i belongs to
/// shard (i mod N) + 1, so N machines together do exactly the items one machine would.
/// </summary>
public sealed record Shard(int Index, int Count)
{
    public static readonly Shard All = new(1, 1);

    public bool Owns(long item) => item % Count == Index - 1;

    public static Shard Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return All;
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out int k) && int.TryParse(parts[1], out int n) && n >= 1 && k >= 1 && k <= n)
            return new Shard(k, n);
        throw new ArgumentException($"--shard '{text}': expected K/N with 1 <= K <= N (e.g. 2/8).");
    }

    public override string ToString() => $"{Index}/{Count}";
}
