using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

internal static class Bits
{
    /// <summary>Same shape, dtype and every element bit-for-bit (NaN-free tensors).</summary>
    public static bool Identical(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();
    }

    public static void AssertIdentical(Tensor actual, Tensor expected, string what) =>
        Assert.True(Identical(actual, expected), $"{what}: differs (max |diff| {TensorAssert.MaxAbsDiff(actual, expected):E3})");
}
