using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Platform;

/// <summary>
/// After <c>module.to(device)</c>, lists every tensor a module holds in a field (registered or not, cached or not)
/// that is somewhere else: a tensor that does not follow the module to the GPU.
/// </summary>
public static class ModulePlacementAudit
{
    public static IReadOnlyList<string> Misplaced(nn.Module root, Device device)
    {
        var found = new List<string>();
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        Visit(root, "", device, found, seen);
        return found;
    }

    private static void Visit(nn.Module module, string path, Device device, List<string> found, HashSet<object> seen)
    {
        if (!seen.Add(module)) return;
        for (var type = module.GetType(); type is not null && type != typeof(nn.Module); type = type.BaseType)
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
                foreach (var t in Tensors(field.GetValue(module)))
                    if (!t.IsInvalid && t.device.type != device.type)
                        found.Add($"{(path.Length == 0 ? module.GetType().Name : path)}.{field.Name} on {t.device.type}");
        foreach (var (name, child) in module.named_children())
            Visit(child, path.Length == 0 ? name : path + "." + name, device, found, seen);
    }

    private static IEnumerable<Tensor> Tensors(object? value) => value switch
    {
        Tensor t => [t],
        IEnumerable<Tensor> ts => ts,
        _ => [],
    };
}
