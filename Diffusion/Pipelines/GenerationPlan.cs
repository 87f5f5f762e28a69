using System.Text;
using DiffusionPeft.IO;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>One image to make: which prompt, which of its images, its seed and where it goes.</summary>
public sealed record PlannedImage(int PromptIndex, int ImageIndex, long GlobalIndex, long Seed, GenerationOptions Options, string PngPath)
{
    public string SidecarPath => Path.ChangeExtension(PngPath, ".json");
}

/// <summary>
/// Expands prompts into images with predictable names (out/NNNN-slug/KKK-sSEED.png). The global order is
/// prompt by prompt, image by image; a shard takes every N-th image of it, so shards never overlap and
/// together produce exactly what one machine would. Images already on disk are skipped on a rerun.
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
    }

    public string PromptDir(int promptIndex) => Path.Combine(OutputDir, $"{promptIndex + 1:D4}-{Slug(Prompts[promptIndex].Prompt)}");

    public IEnumerable<PlannedImage> ForShard(Shard shard) => All.Where(i => shard.Owns(i.GlobalIndex));

    public IEnumerable<PlannedImage> Pending(Shard shard) => ForShard(shard).Where(i => !File.Exists(i.PngPath));

    /// <summary>Pending images grouped into batches that share every setting but the seed.</summary>
    public IEnumerable<IReadOnlyList<PlannedImage>> Batches(Shard shard)
    {
        foreach (var group in Pending(shard).GroupBy(i => i.PromptIndex))
        {
            var items = group.ToList();
            int size = Math.Max(1, items[0].Options.BatchSize);
            for (int s = 0; s < items.Count; s += size) yield return items.GetRange(s, Math.Min(size, items.Count - s));
        }
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
