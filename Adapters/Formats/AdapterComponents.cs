using TorchSharp;
using static TorchSharp.torch;
using Module = TorchSharp.torch.nn.Module;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>One adapter found in a model: its component ("unet", "text_encoder"), module path and layer.</summary>
public sealed record AdapterEntry(string Component, string Path, AdapterLayer Adapter)
{
    public string Key => KeyOf(Component, Path);

    /// <summary>The tensor-name prefix of a component's module: "unet.down_blocks.0...", or the bare path without a component.</summary>
    public static string KeyOf(string component, string path) => component.Length == 0 ? path : component + "." + path;
}

/// <summary>Component names and their prefixes in the diffusers/PEFT and kohya layouts.</summary>
public static class AdapterComponents
{
    public const string UNet = "unet";
    public const string TextEncoder = "text_encoder";

    /// <summary>Every adapter named <paramref name="adapterName"/> in the components, in module order.</summary>
    public static List<AdapterEntry> Collect(IReadOnlyDictionary<string, Module> components, string adapterName = "default")
    {
        var list = new List<AdapterEntry>();
        foreach (var (component, root) in components)
            foreach (var (path, host) in AdapterInjector.AdaptedLayers(root))
                if (host.FindAdapter(adapterName) is { } a) list.Add(new AdapterEntry(component, path, a));
        return list;
    }

    public static string KohyaPrefix(string component) => component switch
    {
        UNet => "lora_unet_",
        TextEncoder => "lora_te_",
        "text_encoder_2" => "lora_te2_",
        _ => $"lora_{component}_",
    };

    /// <summary>kohya's module name: the dotted path with '.' replaced by '_'.</summary>
    public static string KohyaName(string component, string path) => KohyaPrefix(component) + path.Replace('.', '_');

    internal static Tensor Cpu(Tensor t) => t.detach().cpu().contiguous();
}
