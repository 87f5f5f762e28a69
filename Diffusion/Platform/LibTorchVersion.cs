using System.Text.RegularExpressions;

namespace DiffusionPeft.Diffusion.Platform;

/// <summary>
/// A libtorch release, as PyTorch records it beside its libraries: torch/version.py (<c>__version__ = '2.11.0+cu130'</c>)
/// in a Python install, build-version (<c>2.10.0+cu128</c>) in a libtorch archive.
/// </summary>
public sealed partial record LibTorchVersion(int Major, int Minor, int Patch, string Text)
{
    /// <summary>
    /// TorchSharp 0.107's bridge was built against libtorch 2.10 and imports 1,204 of its C++ symbols; PyTorch 2.11's
    /// libtorch was shown to run it unchanged (all symbols resolve, generate and train ran on an H200). Older and newer
    /// releases change C++ signatures and layouts, which a symbol check cannot see, so they are refused.
    /// </summary>
    public static readonly (int Major, int Minor) OldestSupported = (2, 10), NewestSupported = (2, 11);

    public static string SupportedRange => $"{OldestSupported.Major}.{OldestSupported.Minor}–{NewestSupported.Major}.{NewestSupported.Minor}";

    public bool Supported => (Major, Minor).CompareTo(OldestSupported) >= 0 && (Major, Minor).CompareTo(NewestSupported) <= 0;

    public static LibTorchVersion? Parse(string text)
    {
        var m = VersionPattern().Match(text);
        return m.Success ? new LibTorchVersion(int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), int.Parse(m.Groups[3].Value), m.Value) : null;
    }

    /// <summary>The version recorded next to a torch/lib folder, and the file it came from; null when none is there.</summary>
    public static (LibTorchVersion Version, string File)? Beside(string libDirectory)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(libDirectory).TrimEnd(Path.DirectorySeparatorChar));
        if (parent is null) return null;
        var versionPy = Path.Combine(parent, "version.py");
        if (File.Exists(versionPy))
            foreach (var line in File.ReadLines(versionPy))
                if (line.TrimStart().StartsWith("__version__", StringComparison.Ordinal) && Parse(line[(line.IndexOf('=') + 1)..]) is { } v)
                    return (v, versionPy);
        var buildVersion = Path.Combine(parent, "build-version");
        if (File.Exists(buildVersion) && Parse(File.ReadAllText(buildVersion)) is { } b) return (b, buildVersion);
        return null;
    }

    public override string ToString() => Text;

    [GeneratedRegex(@"(\d+)\.(\d+)\.(\d+)(?:[a-z]+\d*)?(?:\+[0-9A-Za-z.]+)?")]
    private static partial Regex VersionPattern();
}
