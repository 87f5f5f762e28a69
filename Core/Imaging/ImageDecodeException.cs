namespace DiffusionPeft.Core.Imaging;

/// <summary>An image file could not be decoded; names the file and what is wrong with it.</summary>
public sealed class ImageDecodeException(string path, string fault, Exception? inner = null)
    : IOException($"{path}: {fault}", inner)
{
    public string FilePath { get; } = path;
    public string Fault { get; } = fault;
}
