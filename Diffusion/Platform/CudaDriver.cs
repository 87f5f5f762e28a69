using System.Runtime.InteropServices;

namespace DiffusionPeft.Diffusion.Platform;

/// <summary>One CUDA device as the driver reports it.</summary>
public sealed record CudaDeviceInfo(int Index, string Name, int Major, int Minor, long TotalBytes)
{
    /// <summary>bf16 tensor-core math: compute capability 8.0 (Ampere) and later, as torch.cuda.is_bf16_supported.</summary>
    public bool Bf16 => Major >= 8;
    public string ComputeCapability => $"{Major}.{Minor}";
}

/// <summary>
/// The few CUDA driver API calls TorchSharp 0.107 has no binding for: device names, compute capability (for the
/// dtype choice) and device memory in use (for the benchmarks' memory figures). libcuda is the driver's own
/// library, present wherever CUDA runs, with a stable C ABI; indices follow CUDA_VISIBLE_DEVICES as torch's do.
/// </summary>
public static unsafe class CudaDriver
{
    private static readonly Lazy<Api?> _api = new(Load);

    /// <summary>Whether the driver library is present and initialised (says nothing about TorchSharp's CUDA support).</summary>
    public static bool Available => _api.Value is not null;

    /// <summary>The driver's CUDA version, e.g. "13.0"; null without a driver.</summary>
    public static string? DriverVersion
    {
        get
        {
            if (_api.Value is not { } api) return null;
            int v;
            return api.DriverGetVersion(&v) == 0 ? $"{v / 1000}.{v % 1000 / 10}" : null;
        }
    }

    public static IReadOnlyList<CudaDeviceInfo> Devices()
    {
        if (_api.Value is not { } api) return [];
        int count;
        if (api.DeviceGetCount(&count) != 0) return [];
        var devices = new List<CudaDeviceInfo>();
        var name = stackalloc byte[256];
        for (int i = 0; i < count; i++)
        {
            int dev, major, minor;
            nuint total;
            if (api.DeviceGet(&dev, i) != 0 || api.DeviceGetName(name, 256, dev) != 0 || api.DeviceTotalMem(&total, dev) != 0
                || api.DeviceGetAttribute(&major, 75, dev) != 0 || api.DeviceGetAttribute(&minor, 76, dev) != 0)
                continue;
            devices.Add(new CudaDeviceInfo(i, Marshal.PtrToStringUTF8((nint)name) ?? "", major, minor, (long)total));
        }
        return devices;
    }

    public static CudaDeviceInfo? Device(int index) => Devices().FirstOrDefault(d => d.Index == index);

    /// <summary>
    /// (used, total) bytes of device memory as the driver sees them: every process's allocations, this one's CUDA
    /// context and everything PyTorch's caching allocator holds (what nvidia-smi shows). Null without a driver.
    /// </summary>
    public static (long Used, long Total)? MemoryInUse(int index)
    {
        if (_api.Value is not { } api) return null;
        int dev;
        nint ctx, popped;
        if (api.DeviceGet(&dev, index) != 0 || api.PrimaryCtxRetain(&ctx, dev) != 0) return null;
        try
        {
            if (api.CtxPush(ctx) != 0) return null;
            nuint free, total;
            int rc = api.MemGetInfo(&free, &total);
            api.CtxPop(&popped);
            return rc == 0 ? ((long)(total - free), (long)total) : null;
        }
        finally
        {
            api.PrimaryCtxRelease(dev);
        }
    }

    private sealed class Api
    {
        public delegate* unmanaged<int*, int> DriverGetVersion;
        public delegate* unmanaged<int*, int> DeviceGetCount;
        public delegate* unmanaged<int*, int, int> DeviceGet;
        public delegate* unmanaged<byte*, int, int, int> DeviceGetName;
        public delegate* unmanaged<nuint*, int, int> DeviceTotalMem;
        public delegate* unmanaged<int*, int, int, int> DeviceGetAttribute;
        public delegate* unmanaged<nint*, int, int> PrimaryCtxRetain;
        public delegate* unmanaged<int, int> PrimaryCtxRelease;
        public delegate* unmanaged<nint, int> CtxPush;
        public delegate* unmanaged<nint*, int> CtxPop;
        public delegate* unmanaged<nuint*, nuint*, int> MemGetInfo;
    }

    private static Api? Load()
    {
        var name = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        if (!NativeLibrary.TryLoad(name, out var lib)) return null;
        nint F(string symbol) => NativeLibrary.TryGetExport(lib, symbol, out var f) ? f : 0;
        var init = (delegate* unmanaged<uint, int>)F("cuInit");
        var api = new Api
        {
            DriverGetVersion = (delegate* unmanaged<int*, int>)F("cuDriverGetVersion"),
            DeviceGetCount = (delegate* unmanaged<int*, int>)F("cuDeviceGetCount"),
            DeviceGet = (delegate* unmanaged<int*, int, int>)F("cuDeviceGet"),
            DeviceGetName = (delegate* unmanaged<byte*, int, int, int>)F("cuDeviceGetName"),
            DeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)F("cuDeviceTotalMem_v2"),
            DeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)F("cuDeviceGetAttribute"),
            PrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)F("cuDevicePrimaryCtxRetain"),
            PrimaryCtxRelease = (delegate* unmanaged<int, int>)F("cuDevicePrimaryCtxRelease_v2"),
            CtxPush = (delegate* unmanaged<nint, int>)F("cuCtxPushCurrent_v2"),
            CtxPop = (delegate* unmanaged<nint*, int>)F("cuCtxPopCurrent_v2"),
            MemGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)F("cuMemGetInfo_v2"),
        };
        bool complete = init != null && api.DriverGetVersion != null && api.DeviceGetCount != null && api.DeviceGet != null
            && api.DeviceGetName != null && api.DeviceTotalMem != null && api.DeviceGetAttribute != null && api.PrimaryCtxRetain != null
            && api.PrimaryCtxRelease != null && api.CtxPush != null && api.CtxPop != null && api.MemGetInfo != null;
        return complete && init(0) == 0 ? api : null;
    }
}
