using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Tests.Golden;

namespace DiffusionPeft.Tests.Metrics;

/// <summary>A golden case of kind "metrics": its case.json, folder and tensors (read as raw little-endian arrays).</summary>
public sealed class MetricsCase : IDisposable
{
    public string Name { get; }
    public string Folder { get; }
    public JsonObject Json { get; }
    private readonly SafetensorsFile _io;

    public MetricsCase(string caseName)
    {
        Name = caseName;
        var casePath = GoldenData.FileOf(caseName, "case");
        Folder = Path.GetDirectoryName(casePath)!;
        Json = (JsonObject)JsonNode.Parse(ConfigJson.QuoteNonFiniteLiterals(File.ReadAllText(casePath)))!;
        _io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
    }

    public IEnumerable<JsonObject> Images => Json["images"]!.AsArray().Select(n => (JsonObject)n!);
    public string PathOf(string relative) => Path.Combine(Folder, relative);
    public string ModelPath(string key) => PathOf((string)Json["models"]![key]!["file"]!);

    /// <summary>The tokenizer folder (vocab.json, merges.txt) the case's text model was fed with: case.json's tokenizer.case, relative to the case.</summary>
    public string TokenizerDir => Path.GetFullPath(PathOf((string?)Json["tokenizer"]?["case"]
        ?? throw new InvalidDataException($"{Name}/case.json: tokenizer.case does not name the tokenizer folder")));

    /// <summary>The image files, in case.json order.</summary>
    public IReadOnlyList<string> ImageFiles => Images.Select(i => PathOf((string)i["file"]!)).ToList();

    /// <summary>The case's first metrics case, for tests that only need its models and images.</summary>
    public static MetricsCase First() => new(GoldenData.CaseNames("metrics").FirstOrDefault()
        ?? throw new InvalidDataException("the golden manifest has no case of kind 'metrics'"));
    public bool Has(string tensor) => _io.Contains(tensor);
    public long[] ShapeOf(string tensor) => _io.Entry(tensor).Shape;

    public byte[] U8(string tensor) => _io.ReadBytes(tensor);
    public float[] F32(string tensor) => MemoryMarshal.Cast<byte, float>(_io.ReadBytes(tensor)).ToArray();
    public double[] F64(string tensor) => MemoryMarshal.Cast<byte, double>(_io.ReadBytes(tensor)).ToArray();
    public long[] I64(string tensor) => MemoryMarshal.Cast<byte, long>(_io.ReadBytes(tensor)).ToArray();

    public (double Atol, double Rtol) Tolerance(string key)
    {
        var t = (JsonObject)Json["tolerance"]![key]!;
        return ((double)t["atol"]!, t["rtol"] is JsonNode r ? (double)r : 0.0);
    }

    public static float[] Floats(JsonNode? node) => node!.AsArray().Select(v => (float)(double)v!).ToArray();

    public void Dispose() => _io.Dispose();
}

public static class ArrayAssert
{
    public static void Close(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what)
    {
        Assert.True(actual.Length == expected.Length, $"{what}: length {actual.Length} != expected {expected.Length}");
        double worst = 0; int at = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double err = Math.Abs((double)actual[i] - expected[i]);
            Assert.False(double.IsNaN(actual[i]), $"{what}: NaN at {i}");
            double excess = err - (atol + rtol * Math.Abs(expected[i]));
            if (excess > worst) { worst = excess; at = i; }
        }
        Assert.True(at < 0, at < 0 ? "" : $"{what}: at {at} actual {actual[at]:G9} vs expected {expected[at]:G9} exceeds atol {atol:E1} + rtol {rtol:E1}");
    }

    public static void Close(ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, double atol, double rtol, string what)
    {
        Assert.True(actual.Length == expected.Length, $"{what}: length {actual.Length} != expected {expected.Length}");
        for (int i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= atol + rtol * Math.Abs(expected[i]),
                $"{what}: at {i} actual {actual[i]:G12} vs expected {expected[i]:G12} exceeds atol {atol:E1} + rtol {rtol:E1}");
    }

    public static void Equal(ReadOnlySpan<byte> actual, ReadOnlySpan<byte> expected, string what)
    {
        Assert.True(actual.Length == expected.Length, $"{what}: length {actual.Length} != expected {expected.Length}");
        int diff = 0, first = -1, maxd = 0;
        for (int i = 0; i < actual.Length; i++)
            if (actual[i] != expected[i]) { diff++; if (first < 0) first = i; maxd = Math.Max(maxd, Math.Abs(actual[i] - expected[i])); }
        Assert.True(diff == 0, $"{what}: {diff} bytes differ (first at {first}: {(first >= 0 ? actual[first] : 0)} vs {(first >= 0 ? expected[first] : 0)}, max diff {maxd})");
    }
}
