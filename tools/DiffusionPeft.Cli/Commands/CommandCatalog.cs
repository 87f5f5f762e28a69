using System.CommandLine;

namespace DiffusionPeft.Cli.Commands;

/// <summary>Every dpeft subcommand, in the order `dpeft --help` lists them.</summary>
public static class CommandCatalog
{
    public static IEnumerable<Command> All(TextWriter output, TextWriter error)
    {
        yield return DemoCommand.Create(output, error);
        yield return GenerateCommand.Create(output, error);
        yield return TrainCommand.Create(output, error);
        yield return AdapterCommand.Create(output, error);
        yield return EvalCommand.Create(output, error);
        yield return EvalRunCommand.Create(output, error);
        yield return CompareReportsCommand.Create(output, error);
        yield return BenchDreamBoothCommand.Create(output, error);
        yield return ToyModelCommand.Create(output, error);
        yield return DoctorCommand.Create(output, error);
    }
}
