using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Logging;

namespace DiffusionPeft.DreamBooth.Data;

/// <summary>One class image to generate: its index, seed (run seed + index) and file.</summary>
public sealed record ClassImageRequest(int Index, long Seed, string Path);

/// <summary>Generates a batch of class images with the base model (no adapter), writing each file atomically.</summary>
public interface IClassImageSampler
{
    void Generate(string prompt, IReadOnlyList<ClassImageRequest> batch, CancellationToken cancellationToken);
}

/// <summary>
/// Prior preservation's class images: the folder keeps whatever decodable images it has (any names), and the
/// shortfall to --num-class-images is generated as class-00000.png, class-00001.png... with seed = run seed +
/// index, in batches, with progress. Files appear one complete file at a time, so a killed generation resumes
/// with the indices still missing and produces the same images an uninterrupted one would.
/// </summary>
public static class ClassImages
{
    public static string FileName(int index) => $"class-{index:D5}.png";

    public static IReadOnlyList<ClassImageRequest> Missing(TrainConfig config, IImageDecoder decoder, Action<string>? warn = null)
    {
        var folder = config.ClassImages ?? throw new InvalidOperationException("prior preservation is off (no --class-images)");
        Directory.CreateDirectory(folder);
        var decodable = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(folder).Where(f => InstanceDataset.Extensions.Contains(Path.GetExtension(f)) && !InstanceDataset.IsMask(f)))
        {
            try { decoder.Decode(file).EnsureValid(file); decodable.Add(Path.GetFileName(file)); }
            catch (Exception ex) when (ex is not OutOfMemoryException) { warn?.Invoke($"class image {file} does not decode ({ex.Message}); it will be ignored or regenerated"); }
        }
        int need = config.NumClassImages - decodable.Count;
        var requests = new List<ClassImageRequest>();
        for (int i = 0; requests.Count < need; i++)
        {
            if (decodable.Contains(FileName(i))) continue;
            requests.Add(new ClassImageRequest(i, config.Seed + i, Path.Combine(folder, FileName(i))));
        }
        return requests;
    }

    /// <summary>Generates the missing class images; returns how many were generated.</summary>
    public static int Generate(TrainConfig config, IImageDecoder decoder, IClassImageSampler sampler, int batchSize,
                               ITrainingProgress? progress = null, CancellationToken cancellationToken = default)
    {
        progress ??= NullTrainingProgress.Instance;
        var missing = Missing(config, decoder, progress.Warning);
        if (missing.Count == 0) return 0;
        progress.Info($"generating {missing.Count} class images for \"{config.ClassPrompt}\" in {config.ClassImages}");
        int done = 0;
        foreach (var batch in missing.Chunk(Math.Max(1, batchSize)))
        {
            cancellationToken.ThrowIfCancellationRequested();
            sampler.Generate(config.ClassPrompt!, batch, cancellationToken);
            done += batch.Length;
            progress.Info($"class images {done}/{missing.Count}");
        }
        return done;
    }
}
