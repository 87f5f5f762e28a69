using System.Runtime.InteropServices;

namespace DiffusionPeft.Diffusion.Platform;

/// <summary>
/// The switches of libtorch's global context that TorchSharp 0.107 does not bind (torch.use_deterministic_algorithms,
/// torch.backends.cudnn.deterministic and .benchmark), called through their exported C++ symbols in whichever
/// libtorch_cpu this process loaded (the bundled one or DPEFT_LIBTORCH's). The symbols have kept their signatures
/// through libtorch 2.10 and 2.11; where one is missing, <see cref="Available"/> is false and nothing is called.
/// </summary>
public static unsafe partial class LibTorchContext
{
    private static readonly Lazy<Api?> _api = new(Load);

    public static bool Available => _api.Value is not null;

    /// <summary>Ops without a deterministic implementation raise (or, with warnOnly, warn) instead of running.</summary>
    public static bool DeterministicAlgorithms => Require().GetDeterministic(Require().Context) != 0;

    public static void SetDeterministicAlgorithms(bool enabled, bool warnOnly) =>
        Require().SetDeterministic(Require().Context, enabled ? (byte)1 : (byte)0, warnOnly ? (byte)1 : (byte)0);

    public static bool DeterministicCuDnn
    {
        get => Require().GetDeterministicCuDnn(Require().Context) != 0;
        set => Require().SetDeterministicCuDnn(Require().Context, value ? (byte)1 : (byte)0);
    }

    /// <summary>cuDNN's per-shape algorithm search (torch.backends.cudnn.benchmark); off by default in libtorch.</summary>
    public static bool BenchmarkCuDnn
    {
        get => Require().GetBenchmarkCuDnn(Require().Context) != 0;
        set => Require().SetBenchmarkCuDnn(Require().Context, value ? (byte)1 : (byte)0);
    }

    private static Api Require() => _api.Value ?? throw new NotSupportedException("this libtorch does not export the context switches dpeft calls (at::Context::setDeterministicAlgorithms...).");

    private sealed class Api
    {
        public nint Context;
        public delegate* unmanaged<nint, byte> GetDeterministic;
        public delegate* unmanaged<nint, byte, byte, void> SetDeterministic;
        public delegate* unmanaged<nint, byte> GetDeterministicCuDnn;
        public delegate* unmanaged<nint, byte, void> SetDeterministicCuDnn;
        public delegate* unmanaged<nint, byte> GetBenchmarkCuDnn;
        public delegate* unmanaged<nint, byte, void> SetBenchmarkCuDnn;
    }

    private static Api? Load()
    {
        if (!OperatingSystem.IsLinux()) return null;
        // TorchSharp loads libtorch on first use; the context lives in the copy it loaded (found by soname, not loaded again).
        _ = TorchSharp.torch.get_num_threads();
        var lib = Dlopen("libtorch_cpu.so", RtldLazy | RtldNoload);
        if (lib == 0) return null;
        nint F(string symbol) => NativeLibrary.TryGetExport(lib, symbol, out var f) ? f : 0;
        var globalContext = (delegate* unmanaged<nint>)F("_ZN2at13globalContextEv");
        var api = new Api
        {
            GetDeterministic = (delegate* unmanaged<nint, byte>)F("_ZNK2at7Context23deterministicAlgorithmsEv"),
            SetDeterministic = (delegate* unmanaged<nint, byte, byte, void>)F("_ZN2at7Context26setDeterministicAlgorithmsEbb"),
            GetDeterministicCuDnn = (delegate* unmanaged<nint, byte>)F("_ZNK2at7Context18deterministicCuDNNEv"),
            SetDeterministicCuDnn = (delegate* unmanaged<nint, byte, void>)F("_ZN2at7Context21setDeterministicCuDNNEb"),
            GetBenchmarkCuDnn = (delegate* unmanaged<nint, byte>)F("_ZNK2at7Context14benchmarkCuDNNEv"),
            SetBenchmarkCuDnn = (delegate* unmanaged<nint, byte, void>)F("_ZN2at7Context17setBenchmarkCuDNNEb"),
        };
        if (globalContext == null || api.GetDeterministic == null || api.SetDeterministic == null || api.GetDeterministicCuDnn == null
            || api.SetDeterministicCuDnn == null || api.GetBenchmarkCuDnn == null || api.SetBenchmarkCuDnn == null)
            return null;
        api.Context = globalContext();
        return api;
    }

    private const int RtldLazy = 0x1, RtldNoload = 0x4;

    [LibraryImport("libdl.so.2", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint Dlopen(string file, int mode);
}
