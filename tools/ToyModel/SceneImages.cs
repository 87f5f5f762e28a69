using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// Rendered scenes of a world as pixel tensors, item i = scene <c>first + i</c>; each scene is rendered once and kept
/// as bytes (12 KiB), so epochs after the first cost no rendering.
/// </summary>
public sealed class SceneImages(World world, int count, long first = 0)
{
    private readonly byte[]?[] _pixels = new byte[count][];

    public World World { get; } = world;
    public int Count => _pixels.Length;

    public long SceneIndex(int item) => first + item;

    public RgbImage Image(int item)
    {
        var bytes = _pixels[item] ??= World.Render(SceneIndex(item)).Pixels;
        return new RgbImage(64, 64, bytes);
    }

    /// <summary>[B, 3, 64, 64] in [-1, 1] on <paramref name="device"/>.</summary>
    public Tensor Pixels(IReadOnlyList<int> items, Device? device = null)
    {
        using var scope = NewDisposeScope();
        var batch = new byte[items.Count * 64 * 64 * 3];
        for (int k = 0; k < items.Count; k++) Image(items[k]).Pixels.CopyTo(batch, k * 64 * 64 * 3);
        var x = ScenePixels.Unit(batch, items.Count, 64, 64);
        return (device is null ? x : x.to(device)).MoveToOuterDisposeScope();
    }
}
