using System.CommandLine;
using DiffusionPeft.DreamBooth.Config;

namespace DiffusionPeft.Cli.Commands;

/// <summary>
/// `dpeft train`: DreamBooth personalization with any adapter. Every <see cref="TrainConfig"/> option is a flag named
/// like its YAML key (generated from <see cref="TrainConfigYaml.Options"/>), so `--config RUN/config.yaml` and the
/// flags are interchangeable; flags override the file.
/// </summary>
public static class TrainCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = new Option<string?>("--config") { Description = "A run configuration (YAML, e.g. RUN/config.yaml); flags override its values." };
        var subjects = new Option<string?>("--subjects") { Description = "A subjects manifest (CSV or YAML: folder, identifier, class[, name]): one run folder per subject under --out." };
        var shard = new Option<string?>("--shard") { Description = "K/N: train only this machine's share of the subjects (Slurm/Kubernetes array jobs)." };
        var quiet = new Option<bool>("--quiet") { Description = "No progress bar; a plain log line every few seconds." };
        var command = new Command("train", "DreamBooth: personalize a model on a folder of subject images with an adapter (lora, rslora, dora, loraplus, singlora, sdslora); resumable.")
        {
            config, subjects, shard, quiet,
        };

        var options = new List<(TrainOption Option, Option Cli)>();
        foreach (var o in TrainConfigYaml.Options)
        {
            string help = o.Key == "model" ? o.Help + " (default: the embedded tiny model, which is UNTRAINED)" : o.Help;
            Option cli = o.IsList ? new Option<string[]>("--" + o.Key) { Description = help, AllowMultipleArgumentsPerToken = false }
                       : o.IsFlag ? new Option<bool?>("--" + o.Key) { Description = help, Arity = ArgumentArity.ZeroOrOne }
                       : new Option<string?>("--" + o.Key) { Description = help };
            command.Options.Add(cli);
            options.Add((o, cli));
        }

        // diffusers' spelling, kept for scripts: --mixed-precision bf16 is --dtype bf16 (TrainConfigYaml maps it).
        var mixedPrecision = new Option<string?>("--mixed-precision") { Description = "no|bf16: the same as --dtype bf16", Hidden = true };
        command.Options.Add(mixedPrecision);

        command.SetAction(r =>
        {
            var flags = new List<KeyValuePair<string, string>>();
            if (r.GetValue(mixedPrecision) is { } mp) flags.Add(new("mixed-precision", mp));
            foreach (var (o, cli) in options)
            {
                if (r.GetResult(cli) is null) continue;
                switch (cli)
                {
                    case Option<string[]> list:
                        foreach (var v in r.GetValue(list) ?? []) flags.Add(new(o.Key, v));
                        break;
                    case Option<bool?> flag:
                        flags.Add(new(o.Key, (r.GetValue(flag) ?? true) ? "true" : "false"));
                        break;
                    case Option<string?> scalar:
                        flags.Add(new(o.Key, r.GetValue(scalar) ?? ""));
                        break;
                }
            }
            var job = new TrainJob(r.GetValue(config), flags, r.GetValue(subjects), Core.IO.Shard.Parse(r.GetValue(shard)), r.GetValue(quiet));
            return TrainRunner.Run(job, output, error);
        });
        return command;
    }
}

/// <summary>A parsed `dpeft train` invocation: the config file, the TrainConfig flags (key → text), the subjects manifest and shard.</summary>
public sealed record TrainJob(string? ConfigPath, IReadOnlyList<KeyValuePair<string, string>> Flags, string? SubjectsManifest, Core.IO.Shard Shard, bool Quiet);
