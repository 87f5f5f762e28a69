using System.Security.Cryptography;

namespace DiffusionPeft.Core.IO;

/// <summary>SHA-256 of a file, as lowercase hex: model identities (A1111's "Model hash" is its first 10 digits), cache keys.</summary>
public static class FileHash
{
    public static string Sha256(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
