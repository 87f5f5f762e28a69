using System.Reflection;

namespace DiffusionPeft.Tests.Architecture;

/// <summary>
/// The projects' arrows point one way: Core ← Diffusion ← Adapters ← DreamBooth, and Core ← Metrics. The model library
/// never pulls in ONNX Runtime, the metrics never pull in TorchSharp, and Core pulls in neither. Namespaces match projects.
/// </summary>
public sealed class LayeringTests
{
    private static readonly Dictionary<string, Assembly> Projects = new()
    {
        ["DiffusionPeft.Core"] = typeof(global::DiffusionPeft.Core.Imaging.RgbImage).Assembly,
        ["DiffusionPeft.Diffusion"] = typeof(global::DiffusionPeft.Diffusion.Models.UNet2DConditionModel).Assembly,
        ["DiffusionPeft.Adapters"] = typeof(global::DiffusionPeft.Adapters.AdapterLayer).Assembly,
        ["DiffusionPeft.DreamBooth"] = typeof(global::DiffusionPeft.DreamBooth.DreamBoothRun).Assembly,
        ["DiffusionPeft.Metrics"] = typeof(global::DiffusionPeft.Metrics.FidelityEvaluation).Assembly,
    };

    /// <summary>Which of our projects (and which heavy runtimes) each project may reference.</summary>
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["DiffusionPeft.Core"] = [],
        ["DiffusionPeft.Diffusion"] = ["DiffusionPeft.Core", "TorchSharp"],
        ["DiffusionPeft.Adapters"] = ["DiffusionPeft.Core", "DiffusionPeft.Diffusion", "TorchSharp"],
        ["DiffusionPeft.DreamBooth"] = ["DiffusionPeft.Core", "DiffusionPeft.Diffusion", "DiffusionPeft.Adapters", "TorchSharp"],
        ["DiffusionPeft.Metrics"] = ["DiffusionPeft.Core", "Microsoft.ML.OnnxRuntime"],
    };

    private static readonly string[] Watched = ["DiffusionPeft.", "TorchSharp", "Microsoft.ML.OnnxRuntime"];

    public static TheoryData<string> ProjectNames() => new(Projects.Keys);

    [Theory]
    [MemberData(nameof(ProjectNames))]
    public void ProjectReferencesOnlyTheLayersBelowIt(string project)
    {
        var referenced = Projects[project].GetReferencedAssemblies().Select(a => a.Name!)
            .Where(n => Watched.Any(w => n.StartsWith(w, StringComparison.Ordinal))).ToList();
        var forbidden = referenced.Where(n => !Allowed[project].Contains(n)).ToList();
        Assert.True(forbidden.Count == 0, $"{project} references {string.Join(", ", forbidden)}; allowed: {string.Join(", ", Allowed[project])}");
    }

    [Theory]
    [MemberData(nameof(ProjectNames))]
    public void EveryTypeLivesInItsProjectsNamespace(string project)
    {
        var strays = Projects[project].GetTypes()
            .Where(t => t.Namespace is not null && !t.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute), false)
                        && !t.FullName!.Contains("<", StringComparison.Ordinal)
                        && !t.Namespace.StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal)
                        && t.Namespace != project && !t.Namespace.StartsWith(project + ".", StringComparison.Ordinal))
            .Select(t => t.FullName).ToList();
        Assert.True(strays.Count == 0, $"types outside namespace {project}: {string.Join(", ", strays.Take(10))}");
    }
}
