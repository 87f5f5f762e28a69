namespace DiffusionPeft.Diffusion.IO;

/// <summary>A tensor source that holds open files: dispose it when loading is done.</summary>
public interface IOwnedTensorSource : ITensorSource, IDisposable;
