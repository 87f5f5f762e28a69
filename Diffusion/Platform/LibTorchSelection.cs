using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;

namespace DiffusionPeft.Diffusion.Platform;

/// <summary>
/// Runs TorchSharp on the libtorch of an existing PyTorch install, chosen at run time:
/// <c>DPEFT_LIBTORCH=/path/to/site-packages/torch/lib</c>, or <c>DPEFT_LIBTORCH=python</c> (or <c>python:/path/to/python</c>)
/// for the torch that python imports. A CUDA PyTorch gives <c>--device cuda</c> to the CPU build of dpeft.
/// <para>
/// TorchSharp loads libtorch on first use, by name, from the application folder first (the .NET host's native search
/// folders); where that folder bundles a libtorch, it would load that copy beside the chosen one, and two copies
/// abort on their duplicate operator registrations. So, run first thing in Main: in a folder without a bundled
/// libtorch (../shared/device/pack.sh makes one) the chosen libraries are loaded by path (libc10, libtorch_cpu,
/// the CUDA ones when present, libtorch), then TorchSharp's bridge with every symbol bound at once, so a libtorch
/// lacking one fails here with its name; TorchSharp's own by-name loads then find them by soname. In a folder that
/// bundles libtorch the process re-executes itself from a shadow folder (links to everything but the bundled
/// libtorch, in the user's cache) and does the above there.
/// </para>
/// </summary>
public sealed partial class LibTorchSelection
{
    public const string Variable = "DPEFT_LIBTORCH";
    private const string ShadowMarker = "DPEFT_LIBTORCH_SHADOW";

    /// <summary>The files of TorchSharp's libtorch-cpu package: what a shadow folder leaves out.</summary>
    private static readonly string[] BundledLibTorch =
    [
        "libaoti_custom_ops.so", "libbackend_with_compiler.so", "libc10.so", "libjitbackend_test.so", "libnnapi_backend.so", "libshm.so",
        "libtorch.so", "libtorch_cpu.so", "libtorch_global_deps.so", "libtorch_python.so", "libtorchbind_test.so",
    ];

    public string Directory { get; }
    public LibTorchVersion Version { get; }
    public string VersionFile { get; }
    /// <summary>libtorch_cuda was loaded: CUDA devices are usable if the driver sees any.</summary>
    public bool HasCuda { get; }
    /// <summary>The variable's value.</summary>
    public string Source { get; }

    private LibTorchSelection(string directory, LibTorchVersion version, string versionFile, bool hasCuda, string source)
    {
        Directory = directory;
        Version = version;
        VersionFile = versionFile;
        HasCuda = hasCuda;
        Source = source;
    }

    /// <summary>The selection this process made; null when it runs on the libtorch it was built with.</summary>
    public static LibTorchSelection? Active { get; private set; }

    /// <summary>
    /// Applies <see cref="Variable"/> if it is set: returns the selection (null if unset), or does not return when the
    /// process re-executes from a shadow folder. Bad values throw <see cref="LibTorchSelectionException"/>.
    /// </summary>
    public static LibTorchSelection? Apply(string[] args) =>
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } value ? Apply(value, args) : null;

    public static LibTorchSelection? Apply(string value, string[] args)
    {
        if (Active is { } active) return active;
        if (!OperatingSystem.IsLinux())
            throw new LibTorchSelectionException($"{Variable}: choosing libtorch at run time is supported on Linux; build with -p:TorchBackend=cuda instead.");
        var (directory, version, versionFile) = Check(value);

        // Nothing here may touch the torch class before the libraries are in: its static constructor loads libtorch.
        if (LoadedPath("libtorch_cpu.so") is not null || LoadedPath("libLibTorchSharp.so") is not null)
            throw new InvalidOperationException($"{Variable}: libtorch is already loaded; the selection must run before any use of TorchSharp.");
        var appNatives = Path.GetDirectoryName(typeof(torch).Assembly.Location)!;
        if (File.Exists(Path.Combine(appNatives, "libtorch_cuda.so")))
            throw new LibTorchSelectionException($"{Variable}: this dpeft was built with its own CUDA libtorch (TorchBackend=cuda); {Variable} is for the CPU build.");
        if (File.Exists(Path.Combine(appNatives, "libtorch_cpu.so")))
        {
            if (Environment.GetEnvironmentVariable(ShadowMarker) is not null)
                throw new InvalidOperationException($"{Variable}: the shadow folder {appNatives} still holds a libtorch.");
            ReexecuteWithoutBundledLibTorch(appNatives, args);
        }
        var bridge = Path.Combine(appNatives, "libLibTorchSharp.so");
        if (!File.Exists(bridge)) throw new LibTorchSelectionException($"{Variable}: TorchSharp's native bridge is not beside TorchSharp.dll ({bridge}).");

        foreach (var lib in new[] { "libc10.so", "libtorch_cpu.so" }) Open(Path.Combine(directory, lib), RtldLazy, value);
        bool hasCuda = File.Exists(Path.Combine(directory, "libtorch_cuda.so"));
        if (hasCuda)
            foreach (var lib in new[] { "libc10_cuda.so", "libtorch_cuda.so" })
                if (File.Exists(Path.Combine(directory, lib))) Open(Path.Combine(directory, lib), RtldLazy, value);
        Open(Path.Combine(directory, "libtorch.so"), RtldLazy, value);
        Open(bridge, RtldNow, value);
        return Active = new LibTorchSelection(directory, version, versionFile, hasCuda, value);
    }

    /// <summary>The folder a value names, with its libtorch version; throws with what to do when it does not fit.</summary>
    public static (string Directory, LibTorchVersion Version, string VersionFile) Check(string value)
    {
        var v = value.Trim();
        var directory = v == "python" || v.StartsWith("python:", StringComparison.Ordinal)
            ? FromPython(v == "python" ? "python3" : v["python:".Length..])
            : Path.GetFullPath(v);
        if (!System.IO.Directory.Exists(directory))
            throw new LibTorchSelectionException($"{Variable}={value}: no such folder (give a PyTorch install's torch/lib, or 'python').");
        var missing = new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" }.Where(f => !File.Exists(Path.Combine(directory, f))).ToList();
        if (missing.Count > 0)
            throw new LibTorchSelectionException($"{Variable}={value}: {directory} is not a libtorch folder (missing {string.Join(", ", missing)}); give a PyTorch install's torch/lib.");
        var (version, versionFile) = LibTorchVersion.Beside(directory)
            ?? throw new LibTorchSelectionException($"{Variable}={value}: cannot tell which libtorch {directory} is (no ../version.py or ../build-version); supported: {LibTorchVersion.SupportedRange}.");
        if (!version.Supported)
            throw new LibTorchSelectionException($"{Variable}={value}: libtorch {version} ({versionFile}) is outside what TorchSharp {TorchSharpVersion} runs on: {LibTorchVersion.SupportedRange}. Install a PyTorch of that range, or unset {Variable} to use the bundled libtorch.");
        return (directory, version, versionFile);
    }

    /// <summary>The TorchSharp package's version.</summary>
    public static string TorchSharpVersion => typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "?";

    /// <summary>The file a loaded library (by file name) was mapped from, from /proc/self/maps; null if it is not loaded.</summary>
    public static string? LoadedPath(string fileName) => LoadedPaths(fileName).FirstOrDefault();

    /// <summary>Every distinct file of that name mapped into this process (two means two copies of a library).</summary>
    public static IReadOnlyList<string> LoadedPaths(string fileName)
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps)) return [];
        var paths = new List<string>();
        foreach (var line in File.ReadLines(maps))
        {
            int slash = line.IndexOf('/');
            if (slash >= 0 && Path.GetFileName(line[slash..]) == fileName && !paths.Contains(line[slash..])) paths.Add(line[slash..]);
        }
        return paths;
    }

    /// <summary>
    /// A folder beside the application's with a link to each of its files except the bundled libtorch (the entry
    /// assembly and its host files copied, so the .NET host takes the shadow folder as the application's), then
    /// execve of the same command from there: same process id, streams, signals and exit code.
    /// </summary>
    private static void ReexecuteWithoutBundledLibTorch(string appDirectory, string[] args)
    {
        var entry = Assembly.GetEntryAssembly()?.Location;
        if (string.IsNullOrEmpty(entry) || Path.GetDirectoryName(entry) != appDirectory)
            throw new LibTorchSelectionException($"{Variable}: this program's folder bundles libtorch; run dpeft from a folder without it (../shared/device/pack.sh makes one).");
        var stamp = File.GetLastWriteTimeUtc(entry).Ticks + "|" + appDirectory;
        var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        var shadow = Path.Combine(cache, "dpeft", "shadow-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(stamp)))[..16]);
        if (!File.Exists(Path.Combine(shadow, ".complete")))
        {
            var building = shadow + ".tmp-" + Environment.ProcessId;
            System.IO.Directory.CreateDirectory(building);
            var stem = Path.GetFileNameWithoutExtension(entry);
            foreach (var path in System.IO.Directory.EnumerateFileSystemEntries(appDirectory))
            {
                var name = Path.GetFileName(path);
                if (BundledLibTorch.Contains(name) || name.StartsWith("libgomp", StringComparison.Ordinal) || name == "cpu") continue;
                var target = Path.Combine(building, name);
                if (name.StartsWith(stem + ".", StringComparison.Ordinal) || name == stem) File.Copy(path, target);
                else File.CreateSymbolicLink(target, path);
            }
            File.WriteAllText(Path.Combine(building, ".complete"), appDirectory);
            try { System.IO.Directory.Move(building, shadow); }
            catch (IOException) { System.IO.Directory.Delete(building, recursive: true); }   // another process made it first
        }
        var dotnet = Path.GetFileName(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath!
            : Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
        string?[] argv = ["dotnet", Path.Combine(shadow, Path.GetFileName(entry)), .. args, null];
        var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Select(e => $"{e.Key}={e.Value}").Append($"{ShadowMarker}={appDirectory}").Cast<string?>().Append(null).ToArray();
        Console.Out.Flush();
        Execve(dotnet, argv, env);
        throw new LibTorchSelectionException($"{Variable}: could not re-run from {shadow} (errno {Marshal.GetLastPInvokeError()}).");
    }

    private static string FromPython(string python)
    {
        const string script = "import importlib.util, os; s = importlib.util.find_spec('torch'); print(os.path.join(os.path.dirname(s.origin), 'lib') if s else '')";
        try
        {
            using var p = Process.Start(new ProcessStartInfo(python, ["-c", script]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = p.StandardOutput.ReadToEnd().Trim();
            if (!p.WaitForExit(30_000)) { p.Kill(); throw new LibTorchSelectionException($"{Variable}: {python} did not answer within 30 s."); }
            if (p.ExitCode != 0 || output.Length == 0)
                throw new LibTorchSelectionException($"{Variable}: {python} has no torch module (pip install torch, or give the torch/lib folder).");
            return output;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new LibTorchSelectionException($"{Variable}: cannot run {python} ({e.Message}).");
        }
    }

    private const int RtldLazy = 0x1, RtldNow = 0x2;

    private static void Open(string path, int mode, string value)
    {
        if (Dlopen(path, mode) != 0) return;
        var reason = Marshal.PtrToStringUTF8(Dlerror()) ?? "unknown error";
        throw new LibTorchSelectionException($"{Variable}={value}: cannot load {path}: {reason}" +
            (reason.Contains("undefined symbol", StringComparison.Ordinal) ? $" (this libtorch lacks a function TorchSharp {TorchSharpVersion} calls)" : ""));
    }

    [LibraryImport("libdl.so.2", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint Dlopen(string file, int mode);

    [LibraryImport("libdl.so.2", EntryPoint = "dlerror")]
    private static partial nint Dlerror();

    [LibraryImport("libc.so.6", EntryPoint = "execve", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Execve(string path, string?[] argv, string?[] envp);
}
