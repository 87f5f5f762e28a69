using System.CommandLine;
using DiffusionPeft.Cli.Commands;

namespace DiffusionPeft.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

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
