using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>
/// Our adapter file's layers without the base model: each is built around a zero stand-in weight of the layer's shape
/// (recorded in the file's targets), which is all that exporting to other formats needs.
/// </summary>
public static class StandaloneAdapters
{
    public static (DpeftAdapterInfo Info, List<AdapterEntry> Entries) Load(string path)
    {
        var info = DpeftAdapterFile.ReadInfo(path);
        using var file = SafetensorsFile.Open(path);
        var targets = JsonNode.Parse(file.Metadata["targets"])!.AsArray();
        var entries = new List<AdapterEntry>();
        foreach (var t in targets)
        {
            string component = (string)t!["component"]!, modulePath = (string)t["path"]!;
            var (dIn, dOut) = Shape(path, info, t, file);
            var options = info.Options with { Rank = (int)t["rank"]!, Alpha = (double)t["alpha"]!, Trainable = false };
            var weight = new Parameter(zeros(dOut, dIn, device: CPU), requires_grad: false);
            var layer = AdapterInjector.Create(options, weight, null);
            var entry = new AdapterEntry(component, modulePath, layer);
            StateDictLoader.LoadInto(file, layer.AdapterParameters().Select(p => (entry.Key + "." + p.Name, (Tensor)p.Tensor)).ToList(),
                message => new InvalidDataException(message));
            if (layer is SingLoraLinear s) s.StepCount = info.RampStep;
            layer.InvalidateCaches();
            entries.Add(entry);
        }
        return (info, entries);
    }

    private static (long In, long Out) Shape(string path, DpeftAdapterInfo info, JsonNode t, SafetensorsFile file)
    {
        if (t["in_features"] is JsonValue i && t["out_features"] is JsonValue o) return ((long)i, (long)o);
        var key = $"{(string)t["component"]!}.{(string)t["path"]!}";
        if (file.Contains(key + ".lora_A") && file.Contains(key + ".lora_B")) return (file.Entry(key + ".lora_A").Shape[1], file.Entry(key + ".lora_B").Shape[0]);
        throw new InvalidDataException($"{path}: {key}: the layer's shape is not recorded (an older {info.Options.Method} file); export it with the base model loaded.");
    }
}
