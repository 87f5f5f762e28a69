using System.Text;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>One image to make: which prompt, which of its images, its seed and where it goes.</summary>
public sealed record PlannedImage(int PromptIndex, int ImageIndex, long GlobalIndex, long Seed, GenerationOptions Options, string PngPath)
{
    public string SidecarPath => Path.ChangeExtension(PngPath, ".json");
}

/// <summary>
/// Expands prompts into images with predictable names (out/NNNN-slug/KKK-sSEED.png), grouped into fixed batches.
/// A shard takes every N-th batch, so shards never overlap and together produce exactly (bit for bit) what one
/// machine would. Images already on disk are skipped on a rerun.
/// </summary>
public sealed class GenerationPlan
{
    public IReadOnlyList<GenerationOptions> Prompts { get; }
    public IReadOnlyList<PlannedImage> All { get; }
    public string OutputDir { get; }

    public GenerationPlan(IReadOnlyList<GenerationOptions> prompts, string outputDir)
    {
        Prompts = prompts;
        OutputDir = outputDir;
        var all = new List<PlannedImage>();
        long g = 0;
        for (int p = 0; p < prompts.Count; p++)
        {
            var o = prompts[p];
            var dir = PromptDir(p);
            for (int k = 0; k < o.Count; k++)
                all.Add(new PlannedImage(p, k, g++, o.Seed + k, o, Path.Combine(dir, $"{k:D3}-s{o.Seed + k}.png")));
        }
        All = all;
        AllBatches = Group(all);
    }

    public string PromptDir(int promptIndex) => Path.Combine(OutputDir, $"{promptIndex + 1:D4}-{Slug(Prompts[promptIndex].Prompt)}");

    /// <summary>
    /// Every prompt's images in fixed groups of its batch size, numbered globally. Batches are the unit of sharding and
    /// of work: an image's pixels can depend (in the last bit) on which images share its forward pass, so each batch
    /// is always computed whole, on whichever machine owns it, and only its missing files are written.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<PlannedImage>> AllBatches { get; private set; } = [];

    public IEnumerable<IReadOnlyList<PlannedImage>> ShardBatches(Shard shard) => AllBatches.Where((_, b) => shard.Owns(b));

    public IEnumerable<PlannedImage> ForShard(Shard shard) => ShardBatches(shard).SelectMany(b => b);

    public IEnumerable<PlannedImage> Pending(Shard shard) => ForShard(shard).Where(i => !File.Exists(i.PngPath));

    /// <summary>This shard's batches that still miss at least one image.</summary>
    public IEnumerable<IReadOnlyList<PlannedImage>> Batches(Shard shard) => ShardBatches(shard).Where(b => b.Any(i => !File.Exists(i.PngPath)));

    private static IReadOnlyList<IReadOnlyList<PlannedImage>> Group(IReadOnlyList<PlannedImage> all)
    {
        var batches = new List<IReadOnlyList<PlannedImage>>();
        foreach (var group in all.GroupBy(i => i.PromptIndex))
        {
            var items = group.ToList();
            int size = Math.Max(1, items[0].Options.BatchSize);
            for (int s = 0; s < items.Count; s += size) batches.Add(items.GetRange(s, Math.Min(size, items.Count - s)));
        }
        return batches;
    }

    public static string Slug(string prompt, int maxLength = 48)
    {
        var sb = new StringBuilder();
        foreach (char c in prompt.ToLowerInvariant())
        {
            if (char.IsAsciiLetterOrDigit(c)) sb.Append(c);
            else if (sb.Length > 0 && sb[^1] != '-') sb.Append('-');
            if (sb.Length >= maxLength) break;
        }
        var s = sb.ToString().Trim('-');
        return s.Length == 0 ? "prompt" : s;
    }
}
