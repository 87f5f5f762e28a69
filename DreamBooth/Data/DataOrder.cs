using DiffusionPeft.Core.Numerics;

namespace DiffusionPeft.DreamBooth.Data;

/// <summary>Where the data order stands: the epoch and the next batch of that epoch.</summary>
public sealed record DataOrderState(int Epoch, int Position);

/// <summary>
/// Deterministic, resumable batch order. Each epoch permutes the items with a generator keyed by (seed, epoch),
/// groups them by bucket (a batch never mixes buckets, as kohya's bucketing), cuts each group into batches
/// (the last one may be short, as a DataLoader without drop_last), and shuffles the batch order. The state is
/// just (epoch, position), so a resumed run draws exactly the batches the uninterrupted run would.
/// </summary>
public sealed class DataOrder
{
    private const ulong OrderStream = 0x4F52444552UL, BatchStream = 0x4241544348UL;
    private readonly int[] _bucketOfItem;
    private readonly int _batchSize;
    private readonly long _seed;
    private (int Epoch, IReadOnlyList<int[]> Batches)? _cached;

    public DataOrderState State { get; private set; }

    public DataOrder(IReadOnlyList<int> bucketOfItem, int batchSize, long seed, DataOrderState? state = null)
    {
        if (bucketOfItem.Count == 0) throw new ArgumentException("nothing to train on: the data set is empty");
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize));
        _bucketOfItem = bucketOfItem.ToArray();
        _batchSize = batchSize;
        _seed = seed;
        State = state ?? new DataOrderState(0, 0);
    }

    /// <summary>One bucket for all items.</summary>
    public DataOrder(int count, int batchSize, long seed, DataOrderState? state = null)
        : this(new int[count], batchSize, seed, state) { }

    /// <summary>Continues from a checkpoint's state.</summary>
    public void Restore(DataOrderState state) => State = state;

    public int BatchesPerEpoch => BatchesOf(State.Epoch).Count;
    public int BatchSize => _batchSize;

    public IReadOnlyList<int[]> BatchesOf(int epoch)
    {
        if (_cached is { } c && c.Epoch == epoch) return c.Batches;
        var permutation = SplitMix64.Keyed((ulong)_seed, OrderStream, (ulong)epoch).Permutation(_bucketOfItem.Length);
        var batches = new List<int[]>();
        foreach (var group in permutation.GroupBy(i => _bucketOfItem[i]).OrderBy(g => g.Key))
            batches.AddRange(group.Chunk(_batchSize));
        var batchOrder = SplitMix64.Keyed((ulong)_seed, BatchStream, (ulong)epoch).Permutation(batches.Count);
        IReadOnlyList<int[]> ordered = batchOrder.Select(i => batches[i]).ToArray();
        _cached = (epoch, ordered);
        return ordered;
    }

    /// <summary>The next batch of item indices (with its epoch), advancing the state.</summary>
    public (int Epoch, int[] Items) Next()
    {
        var (epoch, position) = State;
        if (position >= BatchesOf(epoch).Count) (epoch, position) = (epoch + 1, 0);
        var items = BatchesOf(epoch)[position];
        State = new DataOrderState(epoch, position + 1);
        return (epoch, items);
    }
}
