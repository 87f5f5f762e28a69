using DiffusionPeft.Diffusion.Models;
using System.Diagnostics;
using System.Reflection;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// Wall time per kind of module over one pass, exclusive of child modules (so an Attention's row is its SDPA, head
/// split/merge and residual; a ResnetBlock2D's row its SiLUs and adds). CPU ops run synchronously, so forward
/// pre/post hooks bracket exactly the module's own work. Kinds: the type name, the kernel size for convolutions, the
/// attention role (attn1 self / attn2 cross) from the module path.
/// </summary>
public sealed class ModuleProfiler
{
    private readonly Dictionary<string, (int Calls, double Ms)> _rows = new();
    private readonly Stack<(long Start, double ChildMs)> _stack = new();
    private readonly List<Action> _removers = new();

    public ModuleProfiler(nn.Module root)
    {
        foreach (var (name, module) in root.named_modules())
        {
            if (name.Length == 0) continue;   // the root itself: the total is measured outside
            string kind = KindOf(name, module);
            Register(module, "register_forward_pre_hook", _ => _stack.Push((Stopwatch.GetTimestamp(), 0)));
            Register(module, "register_forward_hook", _ =>
            {
                var (start, childMs) = _stack.Pop();
                double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (_stack.Count > 0) { var parent = _stack.Pop(); _stack.Push((parent.Start, parent.ChildMs + ms)); }
                var row = _rows.GetValueOrDefault(kind);
                _rows[kind] = (row.Calls + 1, row.Ms + ms - childMs);
            });
        }
    }

    private static string KindOf(string name, nn.Module module) => module switch
    {
        ShapeAwareConv2d c => $"Conv2d {c.KernelSize}x{c.KernelSize}",
        _ when module.GetType().Name == "Attention" => name.EndsWith("attn1", StringComparison.Ordinal) ? "Attention self (SDPA, heads)"
            : name.EndsWith("attn2", StringComparison.Ordinal) ? "Attention cross (SDPA, heads)" : "Attention",
        Linear => name.Contains(".attn1.", StringComparison.Ordinal) ? "Linear attn1" : name.Contains(".attn2.", StringComparison.Ordinal) ? "Linear attn2"
            : name.Contains(".ff.", StringComparison.Ordinal) ? "Linear ff" : "Linear other",
        _ => module.GetType().Name,
    };

    /// <summary>HookableModule's overloads taking Action&lt;Module&gt; (fired with the module before/after its forward).</summary>
    private void Register(nn.Module module, string method, Action<nn.Module> hook)
    {
        var m = module.GetType().GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .FirstOrDefault(x => x.Name == method && x.GetParameters() is [{ ParameterType: var p }] && p == typeof(Action<nn.Module>));
        if (m is null) return;   // not hookable
        var handle = m.Invoke(module, [hook])!;
        var remove = handle.GetType().GetMethod("remove")!;
        _removers.Add(() => remove.Invoke(handle, null));
    }

    public void Detach()
    {
        foreach (var r in _removers) r();
        _removers.Clear();
    }

    public void Print(double totalMs)
    {
        double covered = _rows.Values.Sum(r => r.Ms);
        Console.WriteLine($"  {"module kind (exclusive time)",-34}{"calls",7}{"ms",10}{"%",7}");
        foreach (var (kind, (calls, ms)) in _rows.OrderByDescending(r => r.Value.Ms))
            Console.WriteLine($"  {kind,-34}{calls,7}{ms,10:F0}{100 * ms / totalMs,7:F1}");
        Console.WriteLine($"  {"UNet2DConditionModel itself",-34}{1,7}{totalMs - covered,10:F0}{100 * (totalMs - covered) / totalMs,7:F1}");
        Console.WriteLine($"  {"total",-34}{"",7}{totalMs,10:F0}");
    }
}
