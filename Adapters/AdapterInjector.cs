using System.Reflection;
using Module = TorchSharp.torch.nn.Module;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.Adapters;

/// <summary>One adapted layer: where it is and what it adds.</summary>
public sealed record InjectedLayer(string Component, string Path, AdapterLayer Layer)
{
    /// <summary>The dotted path after the last block index, e.g. "attn1.to_q", "attn2.to_out.0", "self_attn.q_proj".</summary>
    public string Kind => AdapterInjector.KindOf(Path);
    public string QualifiedPath => Component.Length == 0 ? Path : Component + "." + Path;
    public long TrainableParameters => Layer.AdapterParameters().Where(p => p.Tensor.requires_grad).Sum(p => p.Tensor.numel());
}

/// <summary>What an injection did: the adapted layers and trainable-parameter counts per method and layer kind.</summary>
public sealed class InjectionReport
{
    public InjectionReport(IReadOnlyList<InjectedLayer> layers) => Layers = layers;

    public IReadOnlyList<InjectedLayer> Layers { get; }
    public long TrainableParameters => Layers.Sum(l => l.TrainableParameters);

    public IReadOnlyDictionary<AdapterMethod, long> ByMethod =>
        Layers.GroupBy(l => l.Layer.Method).ToDictionary(g => g.Key, g => g.Sum(l => l.TrainableParameters));

    public IReadOnlyDictionary<string, (int Count, long Parameters)> ByKind =>
        Layers.GroupBy(l => l.Kind).OrderBy(g => g.Key, StringComparer.Ordinal)
              .ToDictionary(g => g.Key, g => (g.Count(), g.Sum(l => l.TrainableParameters)));

    public override string ToString()
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"{Layers.Count} adapted layers, {TrainableParameters:N0} trainable parameters");
        foreach (var (m, n) in ByMethod) sb.AppendLine($"  {m}: {n:N0}");
        foreach (var (k, (c, n)) in ByKind) sb.AppendLine($"  {k,-20} {c,4} layers {n,12:N0}");
        return sb.ToString();
    }
}

/// <summary>
/// Puts adapters into a module tree by module-path patterns. A target Linear is replaced by an
/// <see cref="AdapterLayer"/> that re-registers the same weight/bias under the same names; the parent's
/// registration is replaced (register_module(name, null) then register_module(name, wrapper)) and the parent's
/// field or ModuleList/ModuleDict slot holding the Linear is set, so the forward calls the wrapper. A target that
/// already carries an adapter gets the new one stacked on it.
/// </summary>
public static class AdapterInjector
{
    public static AdapterLayer Create(AdapterOptions options, Parameter weight, Parameter? bias, string adapterName = "default", bool ownsBase = true) =>
        options.Method switch
        {
            AdapterMethod.Lora or AdapterMethod.RsLora or AdapterMethod.LoraPlus => new LoraLinear(weight, bias, options, adapterName, ownsBase),
            AdapterMethod.Dora => new DoraLinear(weight, bias, options, adapterName, ownsBase),
            AdapterMethod.SingLora => new SingLoraLinear(weight, bias, options, adapterName, ownsBase),
            AdapterMethod.SdsLora => new SdsLoraLinear(weight, bias, options, adapterName, ownsBase),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Method, "unknown adapter method"),
        };

    /// <summary>
    /// Adds an adapter to every Linear whose path is selected, freezes everything else in <paramref name="root"/>
    /// and returns the report. Throws if no layer matches.
    /// </summary>
    public static InjectionReport Inject(Module root, AdapterOptions options, InjectionTargets targets, string component = "", string adapterName = "default")
    {
        var paths = LinearPaths(root).Where(targets.Selects).ToList();
        if (paths.Count == 0)
            throw new ArgumentException($"no Linear layer of {component} matches [{string.Join(", ", targets.Include)}] (excluding [{string.Join(", ", targets.Exclude)}])");
        var layers = paths.Select(p => new InjectedLayer(component, p, Attach(root, p, targets.OptionsFor(p, options), adapterName))).ToList();
        FreezeBase(root);
        return new InjectionReport(layers);
    }

    /// <summary>Paths of every Linear or adapted Linear in the tree, in named_modules order.</summary>
    public static List<string> LinearPaths(Module root) =>
        HostModules(root).Where(m => m.Module is TorchSharp.Modules.Linear or AdapterLayer).Select(m => m.Path).ToList();

    /// <summary>The AdapterLayers of a tree with their paths (stacked adapters are reached through their host).</summary>
    public static List<(string Path, AdapterLayer Layer)> AdaptedLayers(Module root) =>
        HostModules(root).Where(m => m.Module is AdapterLayer).Select(m => (m.Path, (AdapterLayer)m.Module)).ToList();

    /// <summary>named_modules without the adapters stacked inside an adapter layer (one pass over the tree).</summary>
    private static IEnumerable<(string Path, Module Module)> HostModules(Module root)
    {
        var modules = root.named_modules().ToList();
        var adapted = modules.Where(m => m.module is AdapterLayer).Select(m => m.name).ToHashSet();
        foreach (var (name, module) in modules)
        {
            int dot = name.LastIndexOf('.');
            if (name.Length > 0 && !(dot > 0 && adapted.Contains(name[..dot]))) yield return (name, module);
        }
    }

    public static Module? Find(Module root, string path) =>
        path.Length == 0 ? root : root.named_modules().FirstOrDefault(m => m.name == path).module;

    /// <summary>Adds one adapter at <paramref name="path"/>: wraps a Linear, or stacks onto an existing adapter layer.</summary>
    public static AdapterLayer Attach(Module root, string path, AdapterOptions options, string adapterName = "default")
    {
        var module = Find(root, path) ?? throw new ArgumentException($"no module at '{path}'");
        switch (module)
        {
            case AdapterLayer host:
                var stacked = Create(options, host.weight, host.bias, adapterName, ownsBase: false);
                host.Stack(stacked);
                return stacked;
            case Linear linear:
                var weight = linear.weight ?? throw new InvalidOperationException($"{path}: Linear has no weight");
                var wrapper = Create(options, weight, linear.bias, adapterName);
                Replace(root, path, linear, wrapper);
                return wrapper;
            default:
                throw new ArgumentException($"{path} is a {module.GetType().Name}, not a Linear layer");
        }
    }

    /// <summary>Undoes one <see cref="Attach"/>: takes a stacked adapter off its host, or puts the plain Linear back.</summary>
    public static void Detach(Module root, string path, AdapterLayer adapter)
    {
        if (Find(root, path) is not AdapterLayer host) throw new ArgumentException($"no adapter layer at '{path}'");
        if (ReferenceEquals(host, adapter)) Remove(root, path);
        else host.Unstack(adapter);
    }

    /// <summary>Puts the plain Linear back (the adapter must be unmerged or it stays in the weight).</summary>
    public static void Remove(Module root, string path)
    {
        if (Find(root, path) is not AdapterLayer layer) throw new ArgumentException($"no adapter layer at '{path}'");
        if (layer.Adapters.Any(a => a.IsMerged)) throw new InvalidOperationException($"{path}: unmerge before removing the adapter");
        var linear = nn.Linear(layer.InFeatures, layer.OutFeatures, layer.bias is not null, layer.weight.device, layer.weight.dtype);
        linear.weight = layer.weight;
        if (layer.bias is not null) linear.bias = layer.bias;
        Replace(root, path, layer, linear);
    }

    private static void Replace(Module root, string path, Module old, Module replacement)
    {
        int dot = path.LastIndexOf('.');
        string parentPath = dot < 0 ? "" : path[..dot];
        string name = dot < 0 ? path : path[(dot + 1)..];
        var parent = Find(root, parentPath)!;
        var setters = SlotSetters(parent, name, old, replacement);
        if (setters.Count == 0)
            throw new InvalidOperationException(
                $"{path}: {parent.GetType().Name} holds this {old.GetType().Name} in no Module<Tensor, Tensor> field or list slot, so its forward " +
                "would not call the adapter (model contract: wrappable Linears live in Module<Tensor, Tensor> fields or ModuleLists, never in a Sequential)");
        parent.register_module(name, null!);
        parent.register_module(name, replacement);
        foreach (var set in setters) set();
    }

    private static List<Action> SlotSetters(Module parent, string name, Module old, Module replacement)
    {
        var setters = new List<Action>();
        // ModuleList<T> / ModuleDict<T>: an indexer whose current value is the old module.
        foreach (var prop in parent.GetType().GetProperties(BindingFlags.Instance | BindingFlags.Public))
        {
            var idx = prop.GetIndexParameters();
            if (idx.Length != 1 || !prop.CanWrite || !prop.PropertyType.IsInstanceOfType(replacement)) continue;
            object? key = idx[0].ParameterType == typeof(int) && int.TryParse(name, out int i) ? i
                        : idx[0].ParameterType == typeof(string) ? name : null;
            if (key is null) continue;
            object? current;
            try { current = prop.GetValue(parent, [key]); } catch (TargetInvocationException) { continue; }
            if (ReferenceEquals(current, old)) setters.Add(() => prop.SetValue(parent, replacement, [key]));
        }
        for (var t = parent.GetType(); t is not null && t != typeof(Module); t = t.BaseType)
            foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                if (ReferenceEquals(f.GetValue(parent), old))
                {
                    if (!f.FieldType.IsInstanceOfType(replacement))
                        throw new InvalidOperationException($"{parent.GetType().Name}.{f.Name} is typed {f.FieldType.Name}; type it Module<Tensor, Tensor> so an adapter can replace it");
                    if (f.IsInitOnly) throw new InvalidOperationException($"{parent.GetType().Name}.{f.Name} is readonly; an adapter cannot replace it");
                    setters.Add(() => f.SetValue(parent, replacement));
                }
        return setters;
    }

    /// <summary>requires_grad = false on every parameter except the tensors of trainable adapters.</summary>
    public static void FreezeBase(Module root)
    {
        foreach (var (_, p) in root.named_parameters()) p.requires_grad = false;
        foreach (var (_, layer) in AdaptedLayers(root))
            foreach (var a in layer.Adapters.Where(a => a.Options.Trainable))
                foreach (var p in a.AdapterParameters()) p.Tensor.requires_grad = true;
    }

    public static string KindOf(string path)
    {
        var seg = path.Split('.');
        int last = -1;
        for (int i = 0; i < seg.Length - 1; i++) if (seg[i].All(char.IsAsciiDigit)) last = i;
        return string.Join('.', seg[(last + 1)..]);
    }
}
