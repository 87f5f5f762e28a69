using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Core.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Pipelines;

/// <summary>The components of a Stable Diffusion checkpoint, loaded and placed on one device in one dtype.</summary>
public sealed class StableDiffusionModel : IDisposable
{
    public required CLIPTextModel TextEncoder { get; init; }
    public required UNet2DConditionModel Unet { get; init; }
    public required AutoencoderKL Vae { get; init; }
    public required ClipTokenizer Tokenizer { get; init; }
    public required SchedulerConfig SchedulerConfig { get; init; }
    /// <summary>A short name for metadata (folder or file name).</summary>
    public required string Name { get; init; }
    /// <summary>The file whose hash identifies the model (the single file, or the UNet weights of a folder); null for the embedded default.</summary>
    public string? IdentityFile { get; init; }
    public Device Device { get; init; } = CPU;
    public ScalarType DType { get; init; } = ScalarType.Float32;
    public bool IsEmbeddedDefault { get; init; }
    /// <summary>The model's own sampling defaults (its folder's generation_config.json), or null when it names none.</summary>
    public GenerationConfig? Generation { get; init; }

    /// <summary>The guidance scale a call that names none uses: the model's own, else Stable Diffusion's 7.5.</summary>
    public double DefaultGuidanceScale => Generation?.GuidanceScale ?? GenerationConfig.StableDiffusionGuidanceScale;

    /// <summary>Image pixels per latent pixel: 2^(VAE blocks - 1), 8 for Stable Diffusion.</summary>
    public int VaeScaleFactor => Vae.Config.DownsampleFactor;

    /// <summary>The native image size (sample_size × VAE factor), 512 for SD 1.5.</summary>
    public int NativeResolution => Unet.Config.SampleSize * VaeScaleFactor;

    private string? _hash;

    /// <summary>A1111's "Model hash": the first 10 hex digits of the SHA-256 of the identity file.</summary>
    public string? ShortHash => IdentityFile is null ? null : (_hash ??= FileHash.Sha256(IdentityFile))[..10];

    /// <summary>The full SHA-256 of the identity file (the base model's identity stored with adapters).</summary>
    public string? FullHash => IdentityFile is null ? null : _hash ??= FileHash.Sha256(IdentityFile);

    public IScheduler CreateScheduler(string sampler) =>
        SchedulerFactory.IsDefault(sampler) ? SchedulerFactory.FromConfig(SchedulerConfig) : SchedulerFactory.Create(sampler, SchedulerConfig);

    /// <summary>The short name of the scheduler <see cref="CreateScheduler"/>(<paramref name="sampler"/>) makes, for metadata.</summary>
    public string SamplerKey(string sampler) => SchedulerFactory.KeyOf(sampler, SchedulerConfig);

    /// <summary>The sampler key of <see cref="CreateScheduler"/>("default"), for metadata.</summary>
    public string DefaultSamplerKey => SchedulerFactory.ShortNameOf(SchedulerConfig);

    /// <summary>
    /// Moves the components to <paramref name="dtype"/> on <paramref name="device"/> (in place, as a load in that dtype
    /// places them) and returns the model that describes them; this object must not be used after. A property added to
    /// this class must be copied here.
    /// </summary>
    public StableDiffusionModel PlacedOn(ScalarType dtype, Device device)
    {
        foreach (nn.Module m in new nn.Module[] { TextEncoder, Unet, Vae }) ModelPlacement.Place(m, dtype, device);
        return new StableDiffusionModel
        {
            TextEncoder = TextEncoder, Unet = Unet, Vae = Vae, Tokenizer = Tokenizer, SchedulerConfig = SchedulerConfig, Name = Name,
            IdentityFile = IdentityFile, Device = device, DType = dtype, IsEmbeddedDefault = IsEmbeddedDefault, Generation = Generation, _hash = _hash,
        };
    }

    public void Dispose()
    {
        TextEncoder.Dispose();
        Unet.Dispose();
        Vae.Dispose();
    }
}
