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
    /// <summary>
    /// The largest stand-in weight built (2^26 values, 256 MB in float32; SD's largest Linear has 6.5 M): the stand-in is
    /// allocated whole, so a hostile recorded shape must not size it.
    /// </summary>
    public const long MaxLayerElements = 1L << 26;

    public static (DpeftAdapterInfo Info, List<AdapterEntry> Entries) Load(string path) => InvalidInput.Guard(() => LoadChecked(path));

    private static (DpeftAdapterInfo Info, List<AdapterEntry> Entries) LoadChecked(string path)
    {
        using var file = SafetensorsFile.Open(path);
        var info = DpeftAdapterFile.ReadInfo(path);
        var entries = new List<AdapterEntry>();
        for (int i = 0; i < info.Targets.Count; i++)
        {
            var (component, modulePath, rank, alpha) = info.Targets[i];
            var key = AdapterEntry.KeyOf(component, modulePath);
            var (dIn, dOut) = info.LayerShapes.ElementAtOrDefault(i) ?? ShapeFromTensors(path, info, key, file);
            if ((double)dIn * dOut > MaxLayerElements)
                throw new InvalidDataException($"{path}: {key}: a {dIn} -> {dOut} layer is larger than the {MaxLayerElements:N0} weights this exporter builds");
            DpeftAdapterFile.EnsureRankFitsTensors(path, file, key, rank, dIn, dOut);
            var options = info.Options with { Rank = rank, Alpha = alpha, Trainable = false };
            var weight = new Parameter(zeros(dOut, dIn, device: CPU), requires_grad: false);
            var layer = AdapterInjector.Create(options, weight, null);
            var entry = new AdapterEntry(component, modulePath, layer);
            var tensors = layer.AdapterParameters().Select(p => (Key: entry.Key + "." + p.Name, Target: (Tensor)p.Tensor)).ToList();
            StateDictLoader.LoadInto(file, tensors, message => new InvalidDataException(message));
            foreach (var (name, tensor) in tensors) FiniteTensors.Ensure(path, name, tensor);
            if (layer is SingLoraLinear s) s.StepCount = info.RampStep;
            layer.InvalidateCaches();
            entries.Add(entry);
        }
        return (info, entries);
    }

    private static (long In, long Out) ShapeFromTensors(string path, DpeftAdapterInfo info, string key, SafetensorsFile file)
    {
        if (file.Contains(key + ".lora_A") && file.Contains(key + ".lora_B") && file.Entry(key + ".lora_A").Shape is [_, var dIn] && file.Entry(key + ".lora_B").Shape is [var dOut, _]
            && dIn >= 1 && dOut >= 1)
            return (dIn, dOut);
        throw new InvalidDataException($"{path}: {key}: the layer's shape is not recorded (an older {info.Options.Method} file); export it with the base model loaded.");
    }
}
