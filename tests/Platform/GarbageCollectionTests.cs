using System.Runtime;
using System.Text.Json.Nodes;

namespace DiffusionPeft.Tests.Platform;

/// <summary>
/// Every executable runs with blocking GC only (Directory.Build.props): a background GC beside a native call finalizes
/// TorchSharp's implicit Scalars mid-call, which crashed long training runs.
/// </summary>
public sealed class GarbageCollectionTests
{
    [Fact]
    public void ThisProcessRunsWithoutBackgroundGc() =>
        // Workstation GC without concurrency starts in Batch latency mode; with it, in Interactive.
        Assert.Equal(GCLatencyMode.Batch, GCSettings.LatencyMode);

    [Theory]
    [InlineData("dpeft")]
    [InlineData("DiffusionPeft.Experiments")]
    public void ExecutablesTurnConcurrentGcOff(string assembly)
    {
        var path = Path.Combine(AppContext.BaseDirectory, assembly + ".runtimeconfig.json");
        Assert.True(File.Exists(path), $"{path} not found");
        var options = JsonNode.Parse(File.ReadAllText(path))!["runtimeOptions"]!["configProperties"];
        Assert.False(options?["System.GC.Concurrent"]?.GetValue<bool>() ?? true, $"{path}: System.GC.Concurrent is not false");
    }
}
