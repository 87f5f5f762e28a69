using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>Initial latents, one generator per image seeded with (seed + index), so image k of a batch can be regenerated alone.</summary>
public static class Latents
{
    /// <summary>Unit-normal latents of <paramref name="shape"/> (one image, e.g. [1, 4, 64, 64]) for image <paramref name="index"/>.</summary>
    public static Tensor Initial(long seed, int index, long[] shape, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        using var source = new SeededNoiseSource(seed + index);
        return source.Next(shape, dtype, device ?? CPU);
    }

    /// <summary>A batch of <paramref name="count"/> images, image k drawn as <see cref="Initial"/>(seed, k, shape), concatenated on dim 0.</summary>
    public static Tensor InitialBatch(long seed, int count, long[] shapePerImage, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var parts = Enumerable.Range(0, count).Select(k => Initial(seed, k, shapePerImage, device, dtype)).ToArray();
        return cat(parts, 0).MoveToOuterDisposeScope();
    }
}
