
namespace DiffusionPeft.Diffusion.Platform;

/// <summary>
/// What the processor offers for the dtype choice: bf16 is fast on a CPU only with AVX512-BF16 or AMX (oneDNN's bf16
/// kernels); elsewhere it runs through reference code (AVX2-only AMD EPYC through TorchSharp 0.107: a 1024³ bf16
/// matmul at 0.7 GFLOP/s against 47 for fp32, ../shared/platform-notes.md).
/// </summary>
public sealed record CpuFeatures(string Model, int LogicalCores, bool Avx2, bool Avx512F, bool Avx512Bf16, bool AmxBf16, bool AmxTile)
{
    private static readonly Lazy<CpuFeatures> _current = new(Detect);

    /// <summary>This machine's (read once).</summary>
    public static CpuFeatures Current => _current.Value;

    /// <summary>bf16 matmul and convolution run on bf16 instructions here.</summary>
    public bool FastBf16 => Avx512Bf16 || AmxBf16;

    /// <summary>The flags that matter, in the spelling of /proc/cpuinfo.</summary>
    public IEnumerable<string> Flags =>
        new[] { ("avx2", Avx2), ("avx512f", Avx512F), ("avx512_bf16", Avx512Bf16), ("amx_bf16", AmxBf16), ("amx_tile", AmxTile) }
            .Where(f => f.Item2).Select(f => f.Item1);

    /// <summary>The first processor of a /proc/cpuinfo text.</summary>
    public static CpuFeatures Parse(string cpuinfo, int logicalCores)
    {
        string model = "", flagsLine = "";
        foreach (var line in cpuinfo.Split('\n'))
        {
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            var key = line[..colon].Trim();
            if (key == "model name" && model.Length == 0) model = line[(colon + 1)..].Trim();
            else if (key == "flags" && flagsLine.Length == 0) flagsLine = line[(colon + 1)..];
        }
        var flags = flagsLine.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        return new CpuFeatures(model, logicalCores, flags.Contains("avx2"), flags.Contains("avx512f"), flags.Contains("avx512_bf16"),
            flags.Contains("amx_bf16"), flags.Contains("amx_tile"));
    }

    private static CpuFeatures Detect()
    {
        const string procCpuinfo = "/proc/cpuinfo";
        if (File.Exists(procCpuinfo))
        {
            try { return Parse(File.ReadAllText(procCpuinfo), Environment.ProcessorCount); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        // Elsewhere .NET reports AVX2 and AVX-512F; it has no query for the bf16 and AMX extensions, so bf16 counts as slow.
        return new CpuFeatures(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString(), Environment.ProcessorCount,
            System.Runtime.Intrinsics.X86.Avx2.IsSupported, System.Runtime.Intrinsics.X86.Avx512F.IsSupported, false, false, false);
    }
}
