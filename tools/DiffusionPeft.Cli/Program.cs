using System.CommandLine;
using DiffusionPeft.Cli.Commands;
using DiffusionPeft.Diffusion.Platform;

namespace DiffusionPeft.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Before anything touches TorchSharp: DPEFT_LIBTORCH names the libtorch to run on (e.g. a CUDA PyTorch's torch/lib).
        try { LibTorchSelection.Apply(args); }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 2;
        }
        return Run(args, Console.Out, Console.Error);
    }

    /// <summary>Runs the CLI; tests call this in-process.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("dpeft: Stable Diffusion personalization with LoRA, DoRA, LoRA+, SingLoRA and SDS-LoRA on TorchSharp.");
        foreach (var command in CommandCatalog.All(output, error)) root.Subcommands.Add(command);
        try
        {
            var config = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
            return root.Parse(args).Invoke(config);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            error.WriteLine($"error: {CliErrors.Describe(ex)}");
            if (Environment.GetEnvironmentVariable("DPEFT_DEBUG") == "1") error.WriteLine(ex);
            return CliErrors.ExitCode(ex);
        }
    }
}
