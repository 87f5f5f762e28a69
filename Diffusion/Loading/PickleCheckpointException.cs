namespace DiffusionPeft.Diffusion.Loading;

/// <summary>
/// A PyTorch pickle checkpoint (.bin, .ckpt, .pt, .pth). Unpickling can run arbitrary code, so these are
/// never read; the message says how to convert the file to safetensors with the Python tools.
/// </summary>
public sealed class PickleCheckpointException(string path)
    : NotSupportedException(
        $"{path}: PyTorch pickle checkpoints (.bin/.ckpt/.pt/.pth) are not loaded, because unpickling can execute arbitrary code. " +
        "Convert it to safetensors in Python first: a diffusers folder with " +
        "`StableDiffusionPipeline.from_pretrained(dir).save_pretrained(out_dir, safe_serialization=True)`; " +
        "a single-file .ckpt with diffusers' `scripts/convert_original_stable_diffusion_to_diffusers.py --checkpoint_path model.ckpt --dump_path out_dir --to_safetensors`, " +
        "or keep it single-file with `safetensors.torch.save_file(torch.load('model.ckpt', map_location='cpu', weights_only=True)['state_dict'], 'model.safetensors')`.")
{
    public string FilePath { get; } = path;

    public static readonly string[] Extensions = [".bin", ".ckpt", ".pt", ".pth", ".pkl"];

    public static bool IsPickleName(string path) =>
        Extensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase);
}
