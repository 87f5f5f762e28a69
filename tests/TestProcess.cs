namespace DiffusionPeft.Tests;

/// <summary>
/// Entry point when tests start this assembly as a child process (<c>dotnet DiffusionPeft.Tests.dll MODE ...</c>);
/// the test runner itself never calls it. Modes are registered by the tests that need them.
/// </summary>
public static class TestProcess
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == DreamBooth.KillHarness.Mode) return DreamBooth.KillHarness.Run(args[1..]);
        if (args.Length > 0 && args[0] == Platform.LibTorchSelectionTests.Mode) return Platform.LibTorchSelectionTests.Run(args);
        if (args.Length > 0 && args[0] == Cli.SignalTests.Mode) return DiffusionPeft.Cli.Program.Main(args[1..]);
        Console.Error.WriteLine("DiffusionPeft.Tests is a test assembly: run it with `dotnet test`.");
        return 2;
    }
}
