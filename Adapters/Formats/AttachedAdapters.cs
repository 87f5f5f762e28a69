using Module = TorchSharp.torch.nn.Module;

namespace DiffusionPeft.Adapters.Formats;

/// <summary>
/// The adapters one file load attached: a load that fails halfway takes them off again, so the model is left as it
/// was, and an attachment the model refuses (e.g. DoRA stacked on another adapter) is an error naming the file.
/// </summary>
internal sealed class AttachedAdapters
{
    private readonly List<(Module Root, string Path, AdapterLayer Adapter)> _attached = [];

    public AdapterLayer Attach(Module root, string path, AdapterOptions options, string adapterName, string where)
    {
        AdapterLayer adapter;
        try { adapter = AdapterInjector.Attach(root, path, options, adapterName); }
        catch (ArgumentException ex) { throw new InvalidDataException($"{where}: {ex.Message}", ex); }
        _attached.Add((root, path, adapter));
        return adapter;
    }

    public void Rollback()
    {
        for (int i = _attached.Count - 1; i >= 0; i--)
        {
            var (root, path, adapter) = _attached[i];
            // Not disposed: a wrapper shares the model's weight and bias with the Linear put back.
            AdapterInjector.Detach(root, path, adapter);
        }
        _attached.Clear();
    }
}
