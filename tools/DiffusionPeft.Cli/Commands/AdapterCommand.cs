using DiffusionPeft.Diffusion.Loading;
using System.CommandLine;
using DiffusionPeft.Diffusion;
using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Diffusion.Pipelines;

namespace DiffusionPeft.Cli.Commands;

/// <summary>`dpeft adapter inspect | export | merge`.</summary>
public static class AdapterCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var command = new Command("adapter", "Inspect, convert and merge adapter files.");
        command.Subcommands.Add(Inspect(output));
        command.Subcommands.Add(Export(output));
        command.Subcommands.Add(Merge(output, error));
        return command;
    }

    private static Command Inspect(TextWriter output)
    {
        var file = new Argument<string>("file") { Description = "An adapter .safetensors (ours, kohya/A1111, or diffusers/PEFT)." };
        var c = new Command("inspect", "Method, rank, alpha, targets, parameter count and metadata of an adapter file.") { file };
        c.SetAction(r =>
        {
            var path = Existing(r.GetValue(file)!);
            output.WriteLine(AdapterInspector.Describe(AdapterInspector.Inspect(path)));
            return 0;
        });
        return c;
    }

    private static Command Export(TextWriter output)
    {
        var file = new Argument<string>("file") { Description = "One of our adapter files (adapter.safetensors)." };
        var format = new Option<string>("--format") { Description = "diffusers (PEFT keys, scale folded in) or kohya (lora_unet_..., alpha).", Required = true };
        var outPath = new Option<string?>("--out") { Description = "Output file (default: beside the input, .kohya.safetensors or .diffusers.safetensors)." };
        var c = new Command("export", "Write one of our adapters as a standard two-matrix LoRA that other tools load.") { file, format, outPath };
        c.SetAction(r =>
        {
            var path = Existing(r.GetValue(file)!);
            var fmt = r.GetValue(format)!.ToLowerInvariant();
            if (fmt is not ("diffusers" or "peft" or "kohya")) throw new ArgumentException($"--format '{fmt}': expected diffusers or kohya.");
            var stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, Path.GetFileNameWithoutExtension(path));
            var target = r.GetValue(outPath) ?? stem + (fmt == "kohya" ? ".kohya.safetensors" : ".diffusers.safetensors");
            var (info, entries) = StandaloneAdapters.Load(path);
            if (fmt == "kohya") KohyaFormat.Export(target, entries); else PeftFormat.Export(target, entries);
            output.WriteLine($"wrote {target} ({info.Options.Method} as {(fmt == "kohya" ? "kohya LoRA" : "diffusers/PEFT LoRA")}, {entries.Count} layers)");
            return 0;
        });
        return c;
    }

    private static Command Merge(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "A diffusers folder or a single .safetensors checkpoint.", Required = true };
        var adapter = new Option<string[]>("--adapter") { Description = "FILE[:scale], repeatable.", Required = true };
        var outPath = new Option<string>("--out") { Description = "A new folder (diffusers source) or .safetensors file (single-file source).", Required = true };
        var configsFrom = new Option<string?>("--configs-from") { Description = "For a single-file checkpoint: a diffusers folder with its configs and tokenizer." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "For a single-file checkpoint: a tokenizer folder." };
        var device = new Option<string>("--device") { Description = "cpu or cuda: where the float32 merge arithmetic runs (results agree to float rounding).", DefaultValueFactory = _ => "cpu" };
        var c = new Command("merge", "Bake adapters into a copy of the model's weights (same layout as the source).") { model, adapter, outPath, configsFrom, tokenizer, device };
        c.SetAction(r =>
        {
            var m = r.GetValue(model)!;
            var specs = r.GetValue(adapter)!.Select(AdapterSpec.Parse).ToList();
            foreach (var s in specs) Existing(s.Path);
            var dev = TorchOptions.ParseDevice(r.GetValue(device)!);
            using var loaded = StableDiffusionLoader.Load(m, device: dev, configsFrom: r.GetValue(configsFrom), tokenizerDir: r.GetValue(tokenizer));
            AdapterMerge.Write(m, loaded, specs, r.GetValue(outPath)!, r.GetValue(configsFrom), w => error.WriteLine($"warning: {w}"));
            output.WriteLine($"wrote {Path.GetFullPath(r.GetValue(outPath)!)} ({string.Join(", ", specs)} merged into {m})");
            return 0;
        });
        return c;
    }

    private static string Existing(string path) => File.Exists(path) ? path : throw new FileNotFoundException($"{path}: file not found.", path);
}
