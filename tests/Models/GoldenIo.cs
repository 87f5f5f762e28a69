using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Tests.Golden;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

/// <summary>A golden case's io.safetensors with its tolerances: compares results with the expected tensors by name.</summary>
internal sealed class GoldenIo : IDisposable
{
    private readonly SafetensorsFile _file;
    private readonly Tolerance _tolerance;

    public string CaseName { get; }

    public GoldenIo(string caseName)
    {
        CaseName = caseName;
        _file = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        _tolerance = GoldenData.ToleranceOf(caseName);
    }

    public IEnumerable<string> Names => _file.Names;
    public bool Contains(string name) => _file.Contains(name);
    public Tensor Read(string name) => _file.Read(name);

    /// <summary>Asserts <paramref name="actual"/> matches tensor <paramref name="name"/> within the case's tolerance for it.</summary>
    public void Check(Tensor actual, string name, string? label = null, Tensor? expected = null)
    {
        var (atol, rtol) = _tolerance.For(name);
        TensorAssert.Close(actual, expected ?? _file.Read(name), atol, rtol, $"{CaseName} {label ?? name}");
    }

    public void CheckIfPresent(Tensor actual, string name)
    {
        if (_file.Contains(name)) Check(actual, name);
    }

    public void Dispose() => _file.Dispose();
}
