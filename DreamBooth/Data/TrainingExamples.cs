using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Data;

/// <summary>
/// Latent moments and text embeddings of training items (item i is image i mod count, so a class set and an
/// instance set of different sizes pair up as in diffusers' DreamBoothDataset). Each image is preprocessed and
/// encoded alone, through the caches, so cached and uncached runs see identical tensors. The key of a latent is
/// the file's SHA-256, its crop plan (size, corner, flip) and the encoder's identity; of an embedding, the
/// caption and the text encoder's identity. Text embeddings bypass the cache while the text encoder trains. Loss masks
/// (--masked-loss) share the latents' cache.
/// </summary>
public sealed class TrainingExamples
{
    private readonly InstanceDataset _data;
    private readonly IReadOnlyList<Bucket> _targets;
    private readonly TrainConfig _config;
    private readonly IImageDecoder _decoder;
    private readonly ILatentEncoder _vae;
    private readonly IPromptEncoder _text;
    private readonly TensorCache _latents, _embeddings;
    private readonly Dictionary<string, string> _fileHashes = new(StringComparer.Ordinal);
    private readonly Func<Tensor, Tensor>? _conditioning;

    /// <param name="conditioning">Applied to every caption's states after the cache (--whiten-conditioning); null: none.</param>
    public TrainingExamples(InstanceDataset data, IReadOnlyList<Bucket> targets, TrainConfig config, IImageDecoder decoder,
                            ILatentEncoder vae, IPromptEncoder text, TensorCache latents, TensorCache embeddings,
                            Func<Tensor, Tensor>? conditioning = null)
    {
        if (targets.Count != data.Count) throw new ArgumentException("one target size per image");
        (_data, _targets, _config, _decoder, _vae, _text, _latents, _embeddings) = (data, targets, config, decoder, vae, text, latents, embeddings);
        _conditioning = conditioning;
    }

    public int Count => _data.Count;

    public CropPlan PlanOf(int item, int epoch)
    {
        var image = _data[item % _data.Count];
        var target = _targets[item % _data.Count];
        // The cache key holds the whole plan, so a flipped and an unflipped latent are cached apart (random crops
        // would defeat a cache; the config refuses them together).
        return TrainingImageTransform.Plan(image.Width, image.Height, target.Width, target.Height, _config.Crop, _config.Flip, _config.Seed, epoch, item % _data.Count);
    }

    /// <summary>Latent moments [B, 2C, h, w] of the items (all in one bucket).</summary>
    public Tensor Moments(IReadOnlyList<int> items, int epoch)
    {
        using var scope = NewDisposeScope();
        var parts = items.Select(i =>
        {
            var image = _data[i % _data.Count];
            var plan = PlanOf(i, epoch);
            var key = TensorCache.Key("latent", FileHash(image.Path), plan, _vae.Identity);
            return _latents.GetOrAdd(key, () =>
            {
                var decoded = _decoder.Decode(image.Path);
                using var pixels = TrainingImageTransform.ToTensor(decoded, plan);
                using var batch = pixels.unsqueeze(0);
                using var _ = no_grad();
                return _vae.EncodeMoments(batch);
            });
        }).ToArray();
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Loss masks [B, 1, h, w] of the items at the latents' size, on <paramref name="device"/>: each mask file cropped (and
    /// flipped) by the image's own plan, its grey level (PIL's <c>convert("L")</c> luma) in [0, 1] averaged over the latent
    /// cells (kohya's <c>F.interpolate(mask, mode="area")</c>); ones for an image without a mask. Cached with the latents,
    /// keyed by the mask file's hash, the plan and the size.
    /// </summary>
    public Tensor Masks(IReadOnlyList<int> items, int epoch, long height, long width, Device device)
    {
        using var scope = NewDisposeScope();
        var parts = items.Select(i =>
        {
            var image = _data[i % _data.Count];
            if (image.MaskPath is not { } path) return ones(1, 1, height, width, device: device);
            var plan = PlanOf(i, epoch);
            return _latents.GetOrAdd(TensorCache.Key("mask", FileHash(path), plan, $"{height}x{width}"), () =>
            {
                using var pixels = TrainingImageTransform.ToTensor(_decoder.Decode(path), plan);   // [3, H, W] in [-1, 1]
                using var luma = tensor(new[] { 0.299f, 0.587f, 0.114f }, [3, 1, 1], device: pixels.device);
                using var grey = pixels.add(1f).div_(2f).mul(luma).sum([0], keepdim: true).clamp_(0f, 1f).unsqueeze(0);
                return nn.functional.adaptive_avg_pool2d(grey, [height, width]);
            }).to(device);   // a disk cache's hit comes back on the model's device, a fresh mask on the CPU
        }).ToArray();
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Encodes every item's latents (and, with a frozen text encoder, its caption) into the caches now, one image at a
    /// time as <see cref="Moments"/> would, so the values are the same and a resumed run sees what an unbroken one saw.
    /// With a memory cache this keeps 10^4–10^5 small long-lived tensors from being allocated between the training
    /// steps' large ones: measured on the toy UNet stage, such a first epoch slowed from 0.8 to 1.4 s a step and
    /// recovered after it. Only where the crop plan does not change with the epoch (no --flip); reports progress.
    /// </summary>
    public void Fill(Action<string> info, CancellationToken cancellationToken = default)
    {
        if (_config.Flip) return;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int count = _data.Count, report = count < 1000 ? count : count / 10;   // a few images: one line at the end
        for (int i = 0; i < count && !cancellationToken.IsCancellationRequested; i++)
        {
            using (var scope = NewDisposeScope())
            {
                var moments = Moments([i], 0);
                if (_config.MaskedLoss && _data[i].MaskPath is not null) Masks([i], 0, moments.shape[2], moments.shape[3], moments.device);
                if (!_config.TrainTextEncoder) Embeddings([i]);
            }
            if ((i + 1) % report == 0 || i + 1 == count)
            {
                double rate = (i + 1) / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                info($"caching latents: {i + 1:N0}/{count:N0} images, {rate:F0}/s, {TimeSpan.FromSeconds(Math.Round((count - i - 1) / rate)):c} left");
            }
        }
    }

    public IReadOnlyList<string> Captions(IReadOnlyList<int> items) => items.Select(i => _data[i % _data.Count].Caption).ToArray();

    /// <summary>Text-encoder hidden states [B, L, D] of the items' captions.</summary>
    public Tensor Embeddings(IReadOnlyList<int> items) => EmbeddingsOf(Captions(items));

    /// <summary>Text-encoder hidden states [B, L, D] of captions (through the cache unless the text encoder trains).</summary>
    public Tensor EmbeddingsOf(IReadOnlyList<string> captions)
    {
        if (_config.TrainTextEncoder) return _text.Encode(captions);
        using var scope = NewDisposeScope();
        var parts = captions.Select(c => _embeddings.GetOrAdd(TensorCache.Key("text", c, _text.Identity), () =>
        {
            using var _ = no_grad();
            return _text.Encode([c]);
        })).ToArray();
        var states = cat(parts, 0);
        return (_conditioning is null ? states : _conditioning(states)).MoveToOuterDisposeScope();
    }

    private string FileHash(string path)
    {
        if (_fileHashes.TryGetValue(path, out var h)) return h;
        return _fileHashes[path] = Core.IO.FileHash.Sha256(path);
    }
}
