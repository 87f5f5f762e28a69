using System.Diagnostics;
using DiffusionPeft.Diffusion.Platform;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Platform;

/// <summary>
/// DPEFT_LIBTORCH on a stand-in "PyTorch install": a torch/lib of links to the NuGet cache's libtorch 2.10 (other
/// files than the copies bundled beside the tests, so a second copy would show in the process's mappings) with a
/// torch/version.py. The loading test runs in a child process, which re-executes from a shadow folder because the
/// test folder bundles libtorch.
/// </summary>
public sealed class LibTorchSelectionTests : IDisposable
{
    public const string Mode = "libtorch-selection";
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-libtorch-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private string FakeTorch(string version)
    {
        var nuget = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var natives = Path.Combine(nuget, "libtorch-cpu-linux-x64", "2.10.0", "runtimes", "linux-x64", "native");
        Assert.True(Directory.Exists(natives), $"the restored libtorch-cpu package is not at {natives}");
        var lib = Directory.CreateDirectory(Path.Combine(_dir, "site-packages", "torch", "lib")).FullName;
        foreach (var f in Directory.GetFiles(natives)) File.CreateSymbolicLink(Path.Combine(lib, Path.GetFileName(f)), f);
        File.WriteAllText(Path.Combine(lib, "..", "version.py"), $"__version__ = '{version}'\ngit_version = 'unknown'\n");
        return lib;
    }

    [Fact]
    public async Task RunsOnTheChosenLibTorchAloneFromAFolderThatBundlesAnother()
    {
        var lib = FakeTorch("2.10.0+cpu");
        var start = new ProcessStartInfo("dotnet", [typeof(LibTorchSelectionTests).Assembly.Location, Mode])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
            Environment = { [LibTorchSelection.Variable] = lib, ["XDG_CACHE_HOME"] = Path.Combine(_dir, "cache") },
        };
        using var child = Process.Start(start)!;
        var stdoutTask = child.StandardOutput.ReadToEndAsync();
        var stderr = await child.StandardError.ReadToEndAsync();
        var stdout = await stdoutTask;
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2))) await child.WaitForExitAsync(timeout.Token);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(child.ExitCode == 0, $"exit {child.ExitCode}: {stderr}{stdout}");
        var natives = Path.GetDirectoryName(Path.GetFullPath(File.ResolveLinkTarget(Path.Combine(lib, "libtorch_cpu.so"), true)!.FullName))!;
        Assert.Equal([$"libtorch_cpu.so {Path.Combine(natives, "libtorch_cpu.so")}"], lines.Where(l => l.StartsWith("libtorch_cpu.so ")));
        Assert.Contains("selection 2.10.0+cpu", lines);
        Assert.Contains("sum 6", lines);
    }

    [Fact]
    public void UnsupportedOrUnrecognisedFoldersAreRefusedWithWhatToDo()
    {
        var lib = FakeTorch("1.13.1+cu117");
        var e = Assert.Throws<LibTorchSelectionException>(() => LibTorchSelection.Check(lib));
        Assert.Contains("libtorch 1.13.1+cu117", e.Message);
        Assert.Contains($"{LibTorchVersion.SupportedRange}", e.Message);
        File.Delete(Path.Combine(lib, "..", "version.py"));
        Assert.Contains("cannot tell which libtorch", Assert.Throws<LibTorchSelectionException>(() => LibTorchSelection.Check(lib)).Message);
        Assert.Contains("not a libtorch folder", Assert.Throws<LibTorchSelectionException>(() => LibTorchSelection.Check(_dir)).Message);
        Assert.Equal((2, 11), (LibTorchVersion.Parse("__version__ = '2.11.0+cu130'")!.Major, LibTorchVersion.Parse("2.11.0+cu130")!.Minor));
        Assert.True(LibTorchVersion.Parse("2.11.0+cu130")!.Supported);
        Assert.False(LibTorchVersion.Parse("2.12.0.dev20260101+cu130")!.Supported);
    }

    /// <summary>The child: select, compute, report what is mapped.</summary>
    public static int Run(string[] args)
    {
        var selection = LibTorchSelection.Apply(args);
        using var t = tensor(new float[] { 1, 2, 3 }, device: CPU);
        Console.WriteLine($"sum {t.sum().item<float>()}");
        Console.WriteLine($"selection {selection?.Version.Text ?? "none"}");
        foreach (var path in LibTorchSelection.LoadedPaths("libtorch_cpu.so")) Console.WriteLine($"libtorch_cpu.so {path}");
        return 0;
    }
}
