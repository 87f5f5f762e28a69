using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests;

public static class TensorAssert
{
    /// <summary>Asserts that two safetensors files hold the same tensor names with the same bytes.</summary>
    public static void SameSafetensors(string expectedFile, string actualFile)
    {
        using var a = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(expectedFile);
        using var b = DiffusionPeft.Diffusion.IO.SafetensorsFile.Open(actualFile);
        Assert.Equal(a.Entries.Keys.Order(), b.Entries.Keys.Order());
        foreach (var name in a.Entries.Keys) Assert.True(a.ReadBytes(name).AsSpan().SequenceEqual(b.ReadBytes(name)), $"{actualFile}: {name} differs");
    }

    /// <summary>Asserts equal shapes and |actual - expected| &lt;= atol + rtol * |expected| everywhere; the message locates the worst element.</summary>
    public static void Close(Tensor actual, Tensor expected, double atol, double rtol, string what)
    {
        Assert.True(actual.shape.SequenceEqual(expected.shape),
            $"{what}: shape [{string.Join(", ", actual.shape)}] != expected [{string.Join(", ", expected.shape)}]");
        using var scope = NewDisposeScope();
        var a = actual.detach().cpu().to_type(ScalarType.Float64);
        var e = expected.detach().cpu().to_type(ScalarType.Float64);
        Assert.False(a.isnan().any().item<bool>(), $"{what}: result contains NaN");
        var err = (a - e).abs();
        var excess = err - (atol + rtol * e.abs());
        double worst = excess.max().item<double>();
        if (worst > 0)
        {
            long idx = excess.flatten().argmax().item<long>();
            double maxErr = err.max().item<double>();
            Assert.Fail($"{what}: max |error| {maxErr:E3} exceeds atol {atol:E1} + rtol {rtol:E1}*|expected| " +
                        $"(worst at flat index {idx}: actual {a.flatten()[idx].item<double>():G9}, expected {e.flatten()[idx].item<double>():G9})");
        }
    }

    public static void Equal(Tensor actual, Tensor expected, string what)
    {
        Assert.True(actual.shape.SequenceEqual(expected.shape),
            $"{what}: shape [{string.Join(", ", actual.shape)}] != expected [{string.Join(", ", expected.shape)}]");
        using var scope = NewDisposeScope();
        Assert.True(actual.cpu().to_type(expected.dtype).eq(expected.cpu()).all().item<bool>(), $"{what}: values differ");
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return (a.detach().cpu().to_type(ScalarType.Float64) - b.detach().cpu().to_type(ScalarType.Float64)).abs().max().item<double>();
    }
}
