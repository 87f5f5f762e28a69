using System.Buffers.Binary;
using System.Text;
using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.IO;

/// <summary>
/// A corrupt or hostile file must end in an <see cref="InvalidSafetensorsException"/> that names the file, the
/// tensor and the fault; never another exception type, a crash, a hang or an allocation beyond the file's size.
/// </summary>
public sealed class CorruptSafetensorsTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private string ValidFile()
    {
        var path = _tmp.File("valid.safetensors");
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor>
        {
            ["w"] = arange(6f).reshape(2, 3),
            ["b"] = tensor(new short[] { 1, -2 }).to_type(ScalarType.Float16),
            ["step"] = tensor(7L),
            ["mask"] = tensor(new[] { true, false, true }),
            ["none"] = zeros(0, 2),
        }, new Dictionary<string, string> { ["format"] = "pt" });
        return path;
    }

    /// <summary>Opens and reads every tensor; returns null if valid, the exception if invalid, and fails on anything else.</summary>
    private static InvalidSafetensorsException? OpenAndReadAll(string path, string context)
    {
        try
        {
            using var f = SafetensorsFile.Open(path);
            foreach (var name in f.Names)
            {
                using var t = f.Read(name);
                Assert.Equal(f.Entry(name).NumElements, t.numel());
            }
            return null;
        }
        catch (InvalidSafetensorsException ex)
        {
            Assert.Equal(path, ex.FilePath);
            Assert.StartsWith(path + ": invalid safetensors file: ", ex.Message);
            return ex;
        }
        catch (Exception ex)
        {
            Assert.Fail($"{context}: {ex.GetType().Name} instead of InvalidSafetensorsException: {ex.Message}");
            return null;
        }
    }

    [Fact]
    public void EveryTruncationIsRejected()
    {
        var bytes = File.ReadAllBytes(ValidFile());
        var path = _tmp.File("cut.safetensors");
        var faults = new HashSet<string>();
        for (int len = 0; len < bytes.Length; len++)
        {
            File.WriteAllBytes(path, bytes[..len]);
            var ex = OpenAndReadAll(path, $"prefix of {len} bytes");
            Assert.True(ex is not null, $"a {len}-byte prefix of a {bytes.Length}-byte file was accepted");
            faults.Add(ex!.Fault.Split(' ')[0]);
        }
        // Every class of truncation was met: inside the length field, inside the header, inside the data.
        Assert.Contains(faults, f => f.StartsWith("file"));
        Assert.Contains(faults, f => f.StartsWith("header"));
        Assert.Contains(faults, f => f.StartsWith("data"));
    }

    [Fact]
    public void AppendedBytesAreRejected()
    {
        var path = ValidFile();
        File.AppendAllText(path, "x");
        var ex = OpenAndReadAll(path, "appended byte");
        Assert.NotNull(ex);
        Assert.Contains("trailing", ex!.Fault);
    }

    [Fact]
    public void RandomBitFlipsGiveAValidReadOrAnInvalidSafetensorsException()
    {
        var original = File.ReadAllBytes(ValidFile());
        var path = _tmp.File("flipped.safetensors");
        var rng = new Random(20261122);
        int valid = 0, invalid = 0;
        for (int trial = 0; trial < 1500; trial++)
        {
            var bytes = (byte[])original.Clone();
            int flips = trial % 3 + 1;
            var where = new List<int>();
            for (int k = 0; k < flips; k++)
            {
                // Half the flips target the header, where structure lives.
                int pos = rng.Next(2) == 0 ? rng.Next(Math.Min(bytes.Length, 8 + 200)) : rng.Next(bytes.Length);
                bytes[pos] ^= (byte)(1 << rng.Next(8));
                where.Add(pos);
            }
            File.WriteAllBytes(path, bytes);
            if (OpenAndReadAll(path, $"trial {trial}, bits flipped at bytes {string.Join(",", where)}") is null) valid++; else invalid++;
        }
        Assert.True(valid > 0 && invalid > 0, $"valid {valid}, invalid {invalid}");
    }

    private string Hostile(string header, int dataBytes = 0, ulong? declaredLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        var path = _tmp.File("hostile.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static InvalidSafetensorsException Rejects(string path, string? tensor, params string[] faultWords)
    {
        var ex = OpenAndReadAll(path, "hostile header");
        Assert.True(ex is not null, "hostile file was accepted");
        Assert.Equal(tensor, ex!.Tensor);
        if (tensor is not null) Assert.Contains($"tensor '{tensor}'", ex.Message);
        foreach (var w in faultWords) Assert.Contains(w, ex.Fault);
        return ex;
    }

    private const string Ok = "\"ok\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    [Fact] public void HeaderLengthBeyondFile() => Rejects(Hostile("{}", declaredLength: 1000), null, "beyond the end");
    [Fact] public void HeaderLengthAbsurd() => Rejects(Hostile("{}", declaredLength: ulong.MaxValue), null, "absurdly large");
    [Fact] public void HeaderLengthJustAboveLimit() => Rejects(Hostile("{}", declaredLength: (ulong)SafetensorsFile.MaxHeaderBytes + 1), null, "absurdly large");
    [Fact] public void ShorterThanLengthField() { var p = _tmp.File("s.safetensors"); File.WriteAllBytes(p, [1, 2, 3]); Rejects(p, null, "shorter than the 8-byte"); }
    [Fact] public void InvalidJson() => Rejects(Hostile("{\"a\":{\"dtype\":\"F32\",}"), null, "not valid JSON");
    [Fact]
    public void InvalidUtf8()
    {
        var path = Hostile("{\"t\u00e9\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}");
        var bytes = File.ReadAllBytes(path);
        int at = Array.IndexOf(bytes, (byte)0xC3);
        bytes[at] = 0xFF; // a byte that never occurs in UTF-8
        File.WriteAllBytes(path, bytes);
        Rejects(path, null, "malformed string");
    }
    [Fact] public void LoneSurrogateEscape() => Rejects(Hostile("{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}"), null, "malformed string");
    [Fact] public void DeepNesting() => Rejects(Hostile(new string('[', 5000) + new string(']', 5000)), null, "not valid JSON");
    [Fact] public void NonObjectHeader() => Rejects(Hostile("[1,2]  "), null, "not a JSON object");
    [Fact] public void NullHeader() => Rejects(Hostile("null"), null, "not a JSON object");
    [Fact] public void EntryNotAnObject() => Rejects(Hostile("{\"t\":[1]}"), "t", "not an object");
    [Fact] public void UnknownDType() => Rejects(Hostile("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), "t", "unknown dtype 'F8_E4M3'");
    [Fact] public void MissingDType() => Rejects(Hostile("{\"t\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1), "t", "dtype");
    [Fact] public void MissingShape() => Rejects(Hostile("{\"t\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1), "t", "shape");
    [Fact] public void UnexpectedField() => Rejects(Hostile("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1}}", 1), "t", "unexpected field 'x'");
    [Fact] public void DuplicateFieldInEntry() => Rejects(Hostile("{\"t\":{\"dtype\":\"U8\",\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), "t", "duplicate field 'dtype'");
    [Fact] public void SizeMismatch() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "t", "size mismatch", "needs 12 bytes", "span 8");
    [Fact] public void NegativeDim() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8), "t", "shape dimension 0 is -2");
    [Fact] public void FloatDim() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8), "t", "shape dimension 0 is 2.0");
    [Fact] public void StringDim() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8), "t", "not a non-negative integer");
    [Fact] public void HugeDim() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8), "t", "shape dimension 0");
    [Fact] public void ProductOverflow() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}"), "t", "overflows");
    [Fact] public void ByteCountOverflow() => Rejects(Hostile("{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8), "t", "overflows");
    [Fact] public void HugeButNotOverflowingShapeAllocatesNothing() => Rejects(Hostile("{\"t\":{\"dtype\":\"U8\",\"shape\":[1000000,1000000],\"data_offsets\":[0,8]}}", 8), "t", "size mismatch");
    [Fact]
    public void HugeDimensionTimesZeroIsAnEmptyTensor()
    {
        var path = Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,0],\"data_offsets\":[0,0]}}");
        Assert.Null(OpenAndReadAll(path, "huge x 0"));
    }

    [Fact] public void TooManyDims() => Rejects(Hostile("{\"t\":{\"dtype\":\"U8\",\"shape\":[" + string.Join(",", Enumerable.Repeat(1, 65)) + "],\"data_offsets\":[0,1]}}", 1), "t", "dimensions");
    [Fact] public void OffsetsOutOfBounds() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8), "t", "out of bounds");
    [Fact] public void OffsetsReversed() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8), "t", "begin <= end");
    [Fact] public void OffsetsNotNumbers() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]}}", 8), "t", "data_offsets");
    [Fact] public void OffsetsWrongArity() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8), "t", "[begin, end] pair");
    [Fact] public void OffsetsNegative() => Rejects(Hostile("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8), "t", "begin <= end");
    [Fact] public void Overlap() => Rejects(Hostile("{" + Ok + ",\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "t", "overlap tensor 'ok'");
    [Fact] public void Gap() => Rejects(Hostile("{" + Ok + ",\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16), "t", "gap of 4 unused bytes");
    [Fact] public void TrailingData() => Rejects(Hostile("{" + Ok + "}", 12), null, "4 trailing bytes");
    [Fact] public void DuplicateTensorName() => Rejects(Hostile("{" + Ok + "," + Ok.Replace("[0,8]", "[8,16]") + "}", 16), "ok", "duplicate tensor name");
    [Fact] public void DuplicateMetadata() => Rejects(Hostile("{\"__metadata__\":{},\"__metadata__\":{}}"), null, "duplicate __metadata__");
    [Fact] public void NonStringMetadata() => Rejects(Hostile("{\"__metadata__\":{\"a\":1}}"), null, "__metadata__ value 'a'");
    [Fact] public void MetadataNotAnObject() => Rejects(Hostile("{\"__metadata__\":\"x\"}"), null, "__metadata__");
    [Fact] public void DuplicateMetadataKey() => Rejects(Hostile("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}"), null, "duplicate __metadata__ key 'a'");

    [Fact]
    public void ValidHandWrittenHeaderIsAccepted()
    {
        // Keys out of offset order, whitespace padding, a zero-size tensor between two others: all legal.
        var path = Hostile("{\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[8,8]}," + Ok + "}   ", 12);
        Assert.Null(OpenAndReadAll(path, "valid"));
    }

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        var path = _tmp.File("absent.safetensors");
        var ex = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, ex.Message);
    }

    // ---- atomic writes ----

    private string ExistingTarget(out byte[] content)
    {
        var path = _tmp.File("target.safetensors");
        content = Encoding.ASCII.GetBytes("previous content");
        File.WriteAllBytes(path, content);
        return path;
    }

    private void AssertUntouched(string path, byte[] content)
    {
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal([Path.GetFileName(path)], Directory.GetFileSystemEntries(_tmp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void ProducerThrowingMidWayLeavesTargetIntact()
    {
        var path = ExistingTarget(out var content);
        int produced = 0;
        var items = new[]
        {
            new SafetensorsWriter.Pending("a", SafetensorsDType.F32, [4], () => { produced++; return ones(4); }),
            new SafetensorsWriter.Pending("b", SafetensorsDType.F32, [4], () => throw new IOException("source vanished")),
        };
        var ex = Assert.Throws<IOException>(() => SafetensorsWriter.Write(path, items));
        Assert.Equal("source vanished", ex.Message);
        Assert.Equal(1, produced);
        AssertUntouched(path, content);
    }

    [Fact]
    public void ProducerOfWrongShapeFailsAndLeavesTargetIntact()
    {
        var path = ExistingTarget(out var content);
        var items = new[] { new SafetensorsWriter.Pending("a", SafetensorsDType.F32, [4], () => ones(5)) };
        var ex = Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.Write(path, items));
        Assert.Contains("'a'", ex.Message);
        AssertUntouched(path, content);
    }

    [Fact]
    public void UnsupportedDTypeFailsBeforeWriting()
    {
        var path = ExistingTarget(out var content);
        using var c = zeros(2, ScalarType.ComplexFloat32);
        Assert.Throws<NotSupportedException>(() => SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["c"] = c }));
        AssertUntouched(path, content);
    }

    [Fact]
    public void ReservedOrDuplicateNamesFailBeforeWriting()
    {
        var path = ExistingTarget(out var content);
        using var t = ones(1);
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["__metadata__"] = t }));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, new[] { KeyValuePair.Create("x", t), KeyValuePair.Create("x", t) }));
        AssertUntouched(path, content);
    }

    [Fact]
    public void TargetUnderAFileFailsAndCreatesNothing()
    {
        var blocker = _tmp.File("not_a_dir");
        File.WriteAllText(blocker, "x");
        using var t = ones(1);
        Assert.ThrowsAny<IOException>(() => SafetensorsWriter.Write(Path.Combine(blocker, "sub", "w.safetensors"), new Dictionary<string, Tensor> { ["t"] = t }));
        Assert.Equal(["not_a_dir"], Directory.GetFileSystemEntries(_tmp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void TargetThatIsADirectoryFailsAndLeavesNoTempFile()
    {
        var dir = Directory.CreateDirectory(_tmp.File("occupied")).FullName;
        using var t = ones(1);
        Assert.ThrowsAny<IOException>(() => SafetensorsWriter.Write(dir, new Dictionary<string, Tensor> { ["t"] = t }));
        Assert.Equal(["occupied"], Directory.GetFileSystemEntries(_tmp.Path).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public void SuccessfulOverwriteReplacesTarget()
    {
        var path = ExistingTarget(out _);
        using var t = arange(3f);
        SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { ["t"] = t });
        using var f = SafetensorsFile.Open(path);
        using var back = f.Read("t");
        Assert.True(back.equal(t).all().item<bool>());
        Assert.Single(Directory.GetFileSystemEntries(_tmp.Path));
    }
}
