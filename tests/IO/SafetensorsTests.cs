using System.Text;
using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.IO;

public sealed class SafetensorsTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static TheoryData<SafetensorsDType> AllDTypes()
    {
        var d = new TheoryData<SafetensorsDType>();
        foreach (var t in Enum.GetValues<SafetensorsDType>()) d.Add(t);
        return d;
    }

    /// <summary>Values that exercise the whole bit pattern of the dtype (signs, extremes, NaN payload-free specials).</summary>
    private static Tensor Sample(SafetensorsDType dtype, long[] shape, int seed)
    {
        var gen = new Generator((ulong)seed);
        var st = dtype.ToScalarType();
        return dtype switch
        {
            SafetensorsDType.BOOL => randint(0, 2, shape, generator: gen).to_type(st),
            SafetensorsDType.U8 => randint(0, 256, shape, generator: gen).to_type(st),
            SafetensorsDType.I8 => randint(-128, 128, shape, generator: gen).to_type(st),
            SafetensorsDType.I16 => randint(short.MinValue, short.MaxValue + 1L, shape, generator: gen).to_type(st),
            SafetensorsDType.I32 => randint(int.MinValue, int.MaxValue + 1L, shape, generator: gen).to_type(st),
            SafetensorsDType.I64 => randint(long.MinValue / 2, long.MaxValue / 2, shape, generator: gen).to_type(st) * 2 + 1,
            _ => (randn(shape, generator: gen, dtype: ScalarType.Float64) * 1e3).to_type(st),
        };
    }

    private static void AssertBitEqual(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        Assert.True(expected.contiguous().bytes.SequenceEqual(actual.contiguous().bytes), $"{what}: bytes differ after the round trip");
    }

    [Theory, MemberData(nameof(AllDTypes))]
    public void EveryDTypeRoundTripsExactly(SafetensorsDType dtype)
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["matrix"] = Sample(dtype, [3, 5], 1),
            ["scalar"] = Sample(dtype, [], 2),
            ["empty"] = Sample(dtype, [0, 4], 3),
            ["empty_1d"] = Sample(dtype, [0], 4),
            ["vector"] = Sample(dtype, [7], 5),
            ["nonContiguous"] = Sample(dtype, [4, 6], 6).t(),
        };
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcödé \"quoted\" \n newline" };
        var path = _tmp.File($"{dtype}.safetensors");
        SafetensorsWriter.Write(path, tensors, meta);

        using var f = SafetensorsFile.Open(path);
        Assert.Equal(meta, f.Metadata);
        Assert.Equal(tensors.Keys.Order(), f.Names.Order());
        Assert.Equal(0, f.DataOffset % 8);
        foreach (var (name, t) in tensors)
        {
            Assert.Equal(dtype, f.Entry(name).DType);
            AssertBitEqual(t, f.Read(name), name);
        }
        Assert.Empty(f.Read("scalar").shape);
        Assert.Equal(0, f.Read("empty").numel());
    }

    [Fact]
    public void FloatSpecialValuesRoundTrip()
    {
        using var scope = NewDisposeScope();
        var values = tensor(new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, float.Epsilon, float.MaxValue });
        var path = _tmp.File("special.safetensors");
        foreach (var st in new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.Float16, ScalarType.BFloat16 })
        {
            var t = values.to_type(st);
            SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["x"] = t });
            using var f = SafetensorsFile.Open(path);
            AssertBitEqual(t, f.Read("x"), st.ToString());
        }
    }

    [Fact]
    public void NoMetadataWritesNoMetadataEntry()
    {
        var path = _tmp.File("plain.safetensors");
        using var t = ones(2);
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["a"] = t });
        var bytes = File.ReadAllBytes(path);
        Assert.DoesNotContain("__metadata__", Encoding.UTF8.GetString(bytes));
        using var f = SafetensorsFile.Open(path);
        Assert.Empty(f.Metadata);
    }

    [Fact]
    public void EmptyFileOfNoTensorsRoundTrips()
    {
        var path = _tmp.File("none.safetensors");
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor>(), new Dictionary<string, string> { ["k"] = "v" });
        using var f = SafetensorsFile.Open(path);
        Assert.Empty(f.Names);
        Assert.Equal("v", f.Metadata["k"]);
    }

    [Fact]
    public void ReadsIntoRequestedDTypeAndDevice()
    {
        using var scope = NewDisposeScope();
        var path = _tmp.File("conv.safetensors");
        var src = Sample(SafetensorsDType.F16, [4, 4], 7);
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["w"] = src });
        using var f = SafetensorsFile.Open(path);
        var asF32 = f.Read("w", ScalarType.Float32, CPU);
        Assert.Equal(ScalarType.Float32, asF32.dtype);
        Assert.Equal(DeviceType.CPU, asF32.device_type);
        Assert.True(asF32.equal(src.to_type(ScalarType.Float32)).all().item<bool>());
        var viaSource = ((ITensorSource)f).Read("w", ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, viaSource.dtype);
        Assert.Equal(new long[] { 4, 4 }, ((ITensorSource)f).ShapeOf("w"));

        var dest = empty([4, 4], ScalarType.Float16);
        f.ReadInto(f.Entry("w"), dest);
        AssertBitEqual(src, dest, "ReadInto");
        Assert.Throws<ArgumentException>(() => f.ReadInto(f.Entry("w"), empty([4, 4], ScalarType.Float32)));
        Assert.Throws<ArgumentException>(() => f.ReadInto(f.Entry("w"), empty([4, 4], ScalarType.Float16).t()));
    }

    [Fact]
    public void UnknownTensorNameIsAKeyNotFoundNamingFileAndTensor()
    {
        var path = _tmp.File("k.safetensors");
        using var t = ones(1);
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["a"] = t });
        using var f = SafetensorsFile.Open(path);
        var ex = Assert.Throws<KeyNotFoundException>(() => f.Read("nope"));
        Assert.Contains(path, ex.Message);
        Assert.Contains("'nope'", ex.Message);
    }

    [Fact]
    public void OnlyRequestedTensorsAreRead()
    {
        // The header stays valid in memory; cutting the file after opening removes only the last tensor's bytes.
        var path = _tmp.File("lazy.safetensors");
        using (var scope = NewDisposeScope())
            SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["a"] = arange(16f), ["b"] = arange(16f) + 100 });
        using var f = SafetensorsFile.Open(path);
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write)) fs.SetLength(f.DataOffset + f.Entry("b").Begin + 4);
        using var a = f.Read("a");
        Assert.Equal(15f, a[15].item<float>());
        var ex = Assert.Throws<InvalidSafetensorsException>(() => f.Read("b"));
        Assert.Equal("b", ex.Tensor);
        Assert.Contains("unexpected end of file", ex.Message);
    }

    [Fact]
    public void LargeTensorIsNotCopiedThroughManagedMemory()
    {
        const long n = 8L << 20; // 32 MB of float32
        var path = _tmp.File("big.safetensors");
        using (var scope = NewDisposeScope())
        {
            var big = arange(n, dtype: ScalarType.Float32);
            long before = GC.GetAllocatedBytesForCurrentThread();
            SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["big"] = big });
            long written = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(written < 4L << 20, $"writing 32 MB allocated {written} managed bytes");
        }
        using var f = SafetensorsFile.Open(path);
        long start = GC.GetAllocatedBytesForCurrentThread();
        using var t = f.Read("big");
        long read = GC.GetAllocatedBytesForCurrentThread() - start;
        Assert.True(read < 1L << 20, $"reading 32 MB allocated {read} managed bytes");
        Assert.Equal(n - 1, t[n - 1].item<float>());
    }

    [Fact]
    public void ReadHeaderReportsEntriesAndMetadata()
    {
        var path = _tmp.File("h.safetensors");
        using (var scope = NewDisposeScope())
            SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["x"] = zeros(2, 3, dtype: ScalarType.BFloat16) }, new Dictionary<string, string> { ["a"] = "b" });
        var (entries, meta) = SafetensorsFile.ReadHeader(path);
        Assert.Equal(new long[] { 2, 3 }, entries["x"].Shape);
        Assert.Equal(SafetensorsDType.BF16, entries["x"].DType);
        Assert.Equal(12, entries["x"].ByteLength);
        Assert.Equal("b", meta["a"]);
    }
}
