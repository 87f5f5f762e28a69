using System.Collections;

namespace DiffusionPeft.DreamBooth.Config;

/// <summary>An immutable list with value equality, so records holding lists compare by content (config round trips).</summary>
public sealed class EquatableList<T> : IReadOnlyList<T>, IEquatable<EquatableList<T>>
{
    public static readonly EquatableList<T> Empty = new([]);
    private readonly T[] _items;

    public EquatableList(IEnumerable<T> items) => _items = items.ToArray();

    public T this[int index] => _items[index];
    public int Count => _items.Length;
    public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)_items).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();

    public bool Equals(EquatableList<T>? other) => other is not null && _items.SequenceEqual(other._items);
    public override bool Equals(object? obj) => obj is EquatableList<T> o && Equals(o);
    public override int GetHashCode() => _items.Aggregate(17, (h, x) => h * 31 + (x?.GetHashCode() ?? 0));
    public override string ToString() => "[" + string.Join(", ", _items) + "]";

    public static implicit operator EquatableList<T>(T[] items) => new(items);
}
