namespace DiffusionPeft.Diffusion.Platform;

/// <summary>A DPEFT_LIBTORCH value that cannot be used; the message says why and what to do.</summary>
public sealed class LibTorchSelectionException(string message) : ArgumentException(message);
