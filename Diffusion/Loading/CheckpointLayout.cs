using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Diffusion.Loading;

public enum CheckpointFormat { DiffusersFolder, SingleFile }

/// <summary>What <see cref="CheckpointLayout.Detect"/> found: the format, the path to open, and the model family where known.</summary>
public sealed record CheckpointLayoutInfo(CheckpointFormat Format, string Path, ModelFamily Family);

/// <summary>
/// Tells a diffusers pipeline folder from an original-layout single-file checkpoint, and refuses anything
/// else with an error that says what the path is and what was expected.
/// </summary>
public static class CheckpointLayout
{
    public static CheckpointLayoutInfo Detect(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(full)) return DetectFolder(full);
        if (!File.Exists(full)) throw new FileNotFoundException($"{full}: no such checkpoint file or folder.", full);
        if (System.IO.Path.GetFileName(full) == DiffusersModelFolder.ModelIndexName) return DetectFolder(System.IO.Path.GetDirectoryName(full)!);
        bool safetensorsName = full.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
        // A safetensors file starts with its header length, which may look like any magic: sniff only other names.
        if (PickleCheckpointException.IsPickleName(full) || (!safetensorsName && StartsWithZipOrPickle(full))) throw new PickleCheckpointException(full);

        IReadOnlyDictionary<string, SafetensorsEntry> entries;
        try { entries = SafetensorsFile.ReadHeader(full).Entries; }
        catch (InvalidSafetensorsException ex) when (!safetensorsName)
        {
            throw new InvalidDataException(
                $"{full}: unknown checkpoint format: expected a diffusers pipeline folder or a .safetensors file ({ex.Fault}).", ex);
        }
        var family = SingleFileCheckpoint.DetectFamily(entries.Keys);
        if (family != ModelFamily.Unknown) return new CheckpointLayoutInfo(CheckpointFormat.SingleFile, full, family);
        if (entries.Keys.Any(k => k.StartsWith(LdmKeyMapping.UNetPrefix, StringComparison.Ordinal)))
            return new CheckpointLayoutInfo(CheckpointFormat.SingleFile, full, ModelFamily.Unknown);
        if (entries.Keys.Any(k => k.StartsWith("lora_", StringComparison.Ordinal) || k.Contains(".lora_A.", StringComparison.Ordinal) || k.Contains(".lora.down.", StringComparison.Ordinal)))
            throw new InvalidDataException($"{full}: this is a LoRA adapter, not a model checkpoint: load a base model and apply it as an adapter.");
        throw new InvalidDataException(
            $"{full}: not a Stable Diffusion checkpoint: no {LdmKeyMapping.UNetPrefix}* keys (a single component's weights belong in a diffusers folder with model_index.json).");
    }

    private static CheckpointLayoutInfo DetectFolder(string dir)
    {
        if (File.Exists(System.IO.Path.Combine(dir, DiffusersModelFolder.ModelIndexName)))
            return new CheckpointLayoutInfo(CheckpointFormat.DiffusersFolder, dir, FolderFamily(dir));
        var entries = Directory.GetFileSystemEntries(dir);
        if (entries.Length == 0) throw new InvalidDataException($"{dir}: the folder is empty; expected a diffusers pipeline folder (model_index.json) or a .safetensors file.");
        var nested = Directory.GetDirectories(dir).FirstOrDefault(d => File.Exists(System.IO.Path.Combine(d, DiffusersModelFolder.ModelIndexName)));
        if (nested is not null) throw new InvalidDataException($"{dir}: no {DiffusersModelFolder.ModelIndexName} here, but its subfolder {nested} is a diffusers pipeline folder.");
        var safetensors = Directory.GetFiles(dir, "*.safetensors");
        if (safetensors.Length > 0)
            throw new InvalidDataException($"{dir}: not a diffusers pipeline folder (no {DiffusersModelFolder.ModelIndexName}); to load a single-file checkpoint pass the file itself, e.g. {safetensors[0]}.");
        if (Directory.GetFiles(dir).FirstOrDefault(PickleCheckpointException.IsPickleName) is { } pickle) throw new PickleCheckpointException(pickle);
        throw new InvalidDataException($"{dir}: not a diffusers pipeline folder (no {DiffusersModelFolder.ModelIndexName}) and holds no .safetensors checkpoint.");
    }

    private static ModelFamily FolderFamily(string dir)
    {
        var te = System.IO.Path.Combine(dir, "text_encoder", "config.json");
        if (!File.Exists(te)) return ModelFamily.Unknown;
        try
        {
            return ConfigJson.Load(te).String("hidden_act", "") switch
            {
                "quick_gelu" => ModelFamily.SD1,
                "gelu" => ModelFamily.SD2,
                _ => ModelFamily.Unknown,
            };
        }
        catch (InvalidDataException) { return ModelFamily.Unknown; }
    }

    /// <summary>torch.save writes a zip archive (PK\x03\x04) or, in the legacy format, a raw pickle stream (0x80 and the protocol).</summary>
    private static bool StartsWithZipOrPickle(string path)
    {
        Span<byte> head = stackalloc byte[4];
        using var fs = File.OpenRead(path);
        int n = fs.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        return (n == 4 && head.SequenceEqual("PK\x03\x04"u8)) || (n >= 2 && head[0] == 0x80 && head[1] is >= 2 and <= 5);
    }
}
