using System.Diagnostics;
using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.Metrics;

/// <summary>Throughput of one run: images decoded/preprocessed and embedded, and where the time went.</summary>
public sealed record EmbeddingRunStats(int Images, int CacheHits, int Computed, TimeSpan Preprocess, TimeSpan Inference);

/// <summary>
/// Embeds image files with one or more image embedders: each file is read and hashed once, looked up in every
/// embedder's cache, decoded once for all embedders that miss, preprocessed in parallel, and run in batches;
/// the next batch is preprocessed while ONNX runs the current one. Results are durable per batch.
/// </summary>
public sealed class ImageEmbeddingRunner
{
    private readonly IReadOnlyList<IImageEmbedder> _embedders;
    private readonly IReadOnlyList<EmbeddingCache> _caches;
    public int BatchSize { get; }

    public ImageEmbeddingRunner(IReadOnlyList<IImageEmbedder> embedders, IReadOnlyList<EmbeddingCache> caches, int batchSize = 16)
    {
        if (embedders.Count == 0) throw new ArgumentException("no embedders", nameof(embedders));
        if (caches.Count != embedders.Count) throw new ArgumentException("one cache per embedder", nameof(caches));
        for (int i = 0; i < embedders.Count; i++)
            if (caches[i].Identity != embedders[i].Identity)
                throw new ArgumentException($"cache {i} is for '{caches[i].Identity}', embedder is '{embedders[i].Identity}'");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize));
        _embedders = embedders;
        _caches = caches;
        BatchSize = batchSize;
    }

    private sealed record Prepared(int[] Indices, string[] Keys, float[][] Pixels, bool[][] Needed, int[] Counts, int Failed);

    /// <summary>Embeddings [embedder][file], in the order of <paramref name="paths"/>.</summary>
    /// <param name="failures">When given, a file that cannot be read or decoded is recorded here (path → reason) and gets
    /// null embeddings instead of ending the run with its <see cref="ImageDecodeException"/>.</param>
    public (float[][][] Embeddings, EmbeddingRunStats Stats) Embed(IReadOnlyList<string> paths, IProgress<int>? progress = null,
        IDictionary<string, string>? failures = null)
    {
        int n = paths.Count, m = _embedders.Count;
        var result = new float[m][][];
        for (int e = 0; e < m; e++) result[e] = new float[n][];
        var prepTime = new Stopwatch();
        var inferTime = new Stopwatch();
        int hits = 0, computed = 0, done = 0;

        var batches = Enumerable.Range(0, (n + BatchSize - 1) / BatchSize)
            .Select(b => Enumerable.Range(b * BatchSize, Math.Min(BatchSize, n - b * BatchSize)).ToArray()).ToList();
        var failed = failures is null ? null : new System.Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        Task<Prepared>? next = batches.Count > 0 ? Task.Run(() => Prepare(paths, batches[0], result, prepTime, failed)) : null;
        for (int b = 0; b < batches.Count; b++)
        {
            var prepared = next!.GetAwaiter().GetResult();
            // Capture the batch now: the loop variable moves on before the task runs.
            var following = b + 1 < batches.Count ? batches[b + 1] : null;
            next = following is null ? null : Task.Run(() => Prepare(paths, following, result, prepTime, failed));
            inferTime.Start();
            for (int e = 0; e < m; e++)
            {
                if (prepared.Counts[e] == 0) continue;
                var embs = _embedders[e].Embed(prepared.Pixels[e], prepared.Counts[e]);
                var toCache = new List<(string, float[])>(embs.Length);
                int k = 0;
                for (int j = 0; j < prepared.Indices.Length; j++)
                {
                    if (!prepared.Needed[e][j]) continue;
                    result[e][prepared.Indices[j]] = embs[k];
                    toCache.Add((prepared.Keys[j], embs[k]));
                    k++;
                }
                _caches[e].Add(toCache);
                computed += k;
            }
            inferTime.Stop();
            hits += (prepared.Indices.Length - prepared.Failed) * m - prepared.Counts.Sum();
            done += prepared.Indices.Length;
            progress?.Report(done);
        }
        if (failed is not null)
            foreach (var (path, reason) in failed.OrderBy(f => f.Key, StringComparer.Ordinal)) failures![path] = reason;
        return (result, new EmbeddingRunStats(n, hits, computed, prepTime.Elapsed, inferTime.Elapsed));
    }

    private Prepared Prepare(IReadOnlyList<string> paths, int[] indices, float[][][] result, Stopwatch clock,
        System.Collections.Concurrent.ConcurrentDictionary<string, string>? failed)
    {
        lock (clock) clock.Start();
        try
        {
            int m = _embedders.Count, count = indices.Length;
            var keys = new string[count];
            var needed = new bool[m][];
            for (int e = 0; e < m; e++) needed[e] = new bool[count];
            var images = new RgbImage?[count];
            int failedHere = 0;
            Parallel.For(0, count, j =>
            {
                var path = paths[indices[j]];
                try
                {
                    var bytes = ImageLoader.ReadFile(path);
                    keys[j] = EmbeddingCache.KeyOf(bytes);
                    bool any = false;
                    for (int e = 0; e < m; e++)
                    {
                        if (_caches[e].TryGet(keys[j], out var cached)) result[e][indices[j]] = cached;
                        else { needed[e][j] = true; any = true; }
                    }
                    if (any) images[j] = ImageLoader.Decode(bytes, path);
                }
                catch (ImageDecodeException ex) when (failed is not null)
                {
                    failed[path] = ex.Fault;
                    Interlocked.Increment(ref failedHere);
                    for (int e = 0; e < m; e++) { needed[e][j] = false; result[e][indices[j]] = null!; }
                }
            });
            var pixels = new float[m][];
            var counts = new int[m];
            for (int e = 0; e < m; e++)
            {
                var pre = _embedders[e].Preprocessor;
                var slots = new int[count];
                int c = 0;
                for (int j = 0; j < count; j++) slots[j] = needed[e][j] ? c++ : -1;
                counts[e] = c;
                var buf = new float[c * pre.ValuesPerImage];
                Parallel.For(0, count, j =>
                {
                    if (slots[j] >= 0) pre.Process(images[j]!, buf.AsSpan(slots[j] * pre.ValuesPerImage, pre.ValuesPerImage));
                });
                pixels[e] = buf;
            }
            return new Prepared(indices, keys, pixels, needed, counts, failedHere);
        }
        finally { lock (clock) clock.Stop(); }
    }
}
