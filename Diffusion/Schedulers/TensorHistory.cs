using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// The last few tensors a multistep sampler remembers (PLMS model outputs, LMS derivatives, DPM-Solver x0
/// predictions). Entries are detached copies owned here, so callers may dispose their per-step scopes freely.
/// </summary>
internal sealed class TensorHistory : IDisposable
{
    private readonly List<Tensor> _items = [];

    public TensorHistory(int capacity) => Capacity = capacity;

    public int Capacity { get; set; }
    public int Count => _items.Count;

    /// <summary>Index from the end: [^1] is the newest.</summary>
    public Tensor this[Index i] => _items[i];

    public void Add(Tensor t)
    {
        var kept = t.detach().clone().DetachFromDisposeScope();
        _items.Add(kept);
        while (_items.Count > Capacity) { _items[0].Dispose(); _items.RemoveAt(0); }
    }

    public void Clear() { foreach (var t in _items) t.Dispose(); _items.Clear(); }

    public void Dispose() => Clear();
}
