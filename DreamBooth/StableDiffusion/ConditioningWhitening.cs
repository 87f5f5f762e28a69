using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.StableDiffusion;

/// <summary>
/// dpeft train --whiten-conditioning: full fine-tuning of the UNet on a frozen text encoder's states multiplied by
/// P = (E[h hᵀ] + εI)^(-1/2), E over every position of the training captions' states (ZCA whitening; ε = 1e-4 of the
/// largest eigenvalue). The UNet reads the caption only through linear maps of these states (its cross-attention keys
/// and values), so this changes nothing the UNet can express, only how fast gradient descent finds it (input whitening
/// as preconditioning: LeCun et al. 1998, "Efficient BackProp"): a contrastively trained text encoder's states are
/// dominated by a few directions (the toy model's: eigenvalues from 25.8 down to a median of 0.029), and words its image
/// tower saw little of differ only along the faint ones ("circle" and "square" move the toy caption's states 5.9%,
/// whitened 25%: docs/experiments/toy-text-states). P is computed once at the run's start and kept in the run folder (a resume reads it back, so it is
/// exact), and the model is written with each key and value weight W as W·P, so it reads the text encoder as it is.
/// --whiten-strength α &lt; 1 whitens part-way: P = (E[h hᵀ] + εI)^(-α/2), each direction's variance λ becoming about
/// λ^(1-α) (0.5: the spread of the spectrum halved in log scale; the strong directions kept stronger than the faint ones).
/// </summary>
public sealed class ConditioningWhitening : IDisposable
{
    public const string FileName = "conditioning-whitening.safetensors";
    private const string MatrixKey = "whitening";
    private const string CaptionsHashKey = "captions_sha256";
    private const string StrengthKey = "strength";
    private const double RelativeEpsilon = 1e-4;

    private readonly Tensor _matrix;

    private ConditioningWhitening(Tensor matrix) => _matrix = matrix;

    /// <summary>P, [D, D], symmetric, fp32 on the model's device.</summary>
    public Tensor Matrix => _matrix;

    /// <summary>
    /// The run's whitening: read from <paramref name="runDirectory"/>'s <see cref="FileName"/>, or computed from
    /// <paramref name="captions"/>' states (encoded in batches) and written there atomically. A stored matrix that is not
    /// square, not finite, of another width (given <paramref name="width"/>, the text encoder's), computed from other
    /// captions (the run's data changed under it) or of another <paramref name="strength"/> is refused, naming the file.
    /// </summary>
    public static ConditioningWhitening LoadOrCompute(string runDirectory, IReadOnlyCollection<string> captions,
        Func<IReadOnlyList<string>, Tensor> encode, Device device, Action<string>? info = null, int? width = null, double strength = 1.0)
    {
        CheckStrength(strength);
        var path = Path.Combine(runDirectory, FileName);
        var captionsHash = CaptionsHash(captions);
        var strengthText = strength.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        if (File.Exists(path))
        {
            using var file = SafetensorsFile.Open(path);
            var stored = Read(file, path, device, width);
            // Files written before the hash and the strength were kept have neither and are read as they are (strength 1).
            string? fault = null;
            if (file.Metadata.TryGetValue(CaptionsHashKey, out var storedHash) && storedHash != captionsHash)
                fault = $"computed from other captions than this run's {captions.Count:N0} (the training data changed since the run began)";
            else if ((file.Metadata.TryGetValue(StrengthKey, out var storedStrength) ? storedStrength : "1") != strengthText)
                fault = $"a whitening of strength {storedStrength ?? "1"}, and this run asks for {strengthText}";
            if (fault is not null)
            {
                stored.Dispose();
                throw new InvalidDataException($"{path}: {fault}; start the run in a new folder, or delete this file and the run's checkpoints to start over");
            }
            return stored;
        }
        var whitening = Compute(captions, encode, device, strength);
        Directory.CreateDirectory(runDirectory);
        using (var cpu = whitening._matrix.cpu())
            SafetensorsWriter.Write(path, new Dictionary<string, Tensor> { [MatrixKey] = cpu },
                new Dictionary<string, string>
                {
                    ["captions"] = captions.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), [CaptionsHashKey] = captionsHash,
                    [StrengthKey] = strengthText,
                });
        info?.Invoke($"conditioning whitening from {captions.Count:N0} captions' states written to {path}");
        return whitening;
    }

    /// <summary>A whitening file as written by <see cref="LoadOrCompute"/>; one that is not square, not finite or (given
    /// <paramref name="width"/>) of another width is refused, naming the file.</summary>
    public static ConditioningWhitening Read(string path, Device device, int? width = null)
    {
        using var file = SafetensorsFile.Open(path);
        return Read(file, path, device, width);
    }

    private static ConditioningWhitening Read(SafetensorsFile file, string path, Device device, int? width)
    {
        if (!file.Names.Contains(MatrixKey)) throw new InvalidDataException($"{path}: no '{MatrixKey}' tensor");
        using var stored = file.Read(MatrixKey);
        if (stored.dim() != 2 || stored.shape[0] != stored.shape[1])
            throw new InvalidDataException($"{path}: '{MatrixKey}' is not a square matrix ({string.Join("×", stored.shape)})");
        if (width is { } w && stored.shape[0] != w)
            throw new InvalidDataException($"{path}: a {stored.shape[0]}×{stored.shape[0]} whitening for a text encoder of width {w} (from another model?)");
        if (!stored.isfinite().all().item<bool>())
            throw new InvalidDataException($"{path}: '{MatrixKey}' holds NaN or infinite values");
        return new ConditioningWhitening(stored.to(ScalarType.Float32).to(device));
    }

    private static void CheckStrength(double strength)
    {
        if (!(strength > 0 && strength <= 1))
            throw new ArgumentOutOfRangeException(nameof(strength), strength, "the whitening's strength must be in (0, 1]");
    }

    private static string CaptionsHash(IEnumerable<string> captions) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join("\u0000", captions))));

    /// <summary>P from the captions' states' <see cref="SecondMoment"/>.</summary>
    public static ConditioningWhitening Compute(IReadOnlyCollection<string> captions, Func<IReadOnlyList<string>, Tensor> encode, Device device, double strength = 1.0)
    {
        CheckStrength(strength);
        using var moment = SecondMoment(captions, encode);
        return FromMoment(moment, device, strength);
    }

    /// <summary>P = (M + εI)^(-α/2) from a second moment M [D, D] (<see cref="SecondMoment"/>'s), α = <paramref name="strength"/>.</summary>
    public static ConditioningWhitening FromMoment(Tensor moment, Device device, double strength = 1.0)
    {
        CheckStrength(strength);
        using var scope = NewDisposeScope();
        var (values, vectors) = linalg.eigh(moment);
        double floor = RelativeEpsilon * values.max().item<double>();
        // rsqrt at 1, as before the strength existed: a from-nothing rerun of a full-whitening run gets the same P bit for bit.
        var scales = strength == 1.0 ? values.add(floor).rsqrt() : values.add(floor).pow(-strength / 2);
        var p = vectors.matmul(diag(scales)).matmul(vectors.t());
        return new ConditioningWhitening(p.to(ScalarType.Float32).to(device).MoveToOuterDisposeScope());
    }

    /// <summary>E[h hᵀ] [D, D] over every position of the captions' states (encoded 256 at a time), in fp64 on the CPU.</summary>
    public static Tensor SecondMoment(IReadOnlyCollection<string> captions, Func<IReadOnlyList<string>, Tensor> encode)
    {
        if (captions.Count == 0) throw new ArgumentException("conditioning whitening needs at least one caption");
        Tensor? moment = null;
        long rows = 0;
        try
        {
            foreach (var chunk in captions.Chunk(256))
            {
                using var scope = NewDisposeScope();   // one batch's states at a time, on the encoder's device and here
                using var _ = no_grad();
                var x = encode(chunk).to(ScalarType.Float64).cpu();
                x = x.reshape(-1, x.shape[^1]);
                moment ??= zeros(x.shape[1], x.shape[1], ScalarType.Float64).MoveToOuterDisposeScope();
                moment.add_(x.t().matmul(x));
                rows += x.shape[0];
            }
        }
        catch { moment?.Dispose(); throw; }
        return moment!.div_(rows);
    }

    /// <summary>The states the UNet trains on: <paramref name="states"/> [.., D] · P, in their dtype (the product in fp32:
    /// P rounded to bf16 would not be the P folded into the written model).</summary>
    public Tensor Apply(Tensor states)
    {
        if (states.dtype == ScalarType.Float32) return states.matmul(_matrix.to(states.device));
        using var scope = NewDisposeScope();
        return states.to(ScalarType.Float32).matmul(_matrix.to(states.device)).to(states.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Every projection of <paramref name="unet"/> that reads the caption's states, by parameter name ("down_blocks.1.…
    /// .attn2.to_k"): the key and value of each cross-attention, and of the self-attention of a cross-only block.
    /// A UNet that also pools the caption into its timestep embedding (addition_embed_type "text") is refused: that
    /// path is not a linear map of the states alone.
    /// </summary>
    public static IReadOnlyList<(string Name, Linear Projection)> ContextProjections(UNet2DConditionModel unet)
    {
        if (unet.Config.AdditionEmbedType is not null)
            throw new NotSupportedException($"--whiten-conditioning: a UNet with addition_embed_type \"{unet.Config.AdditionEmbedType}\" reads the caption outside its cross-attention");
        var found = new List<(string, Linear)>();
        foreach (var (name, module) in unet.named_modules())
            if (module is BasicTransformerBlock block)
                foreach (var (attention, attentionName) in block.ContextAttentions())
                {
                    if (attention.to_k is not Linear k || attention.to_v is not Linear v)
                        throw new NotSupportedException($"--whiten-conditioning: {name}.{attentionName}'s key and value are not plain linear layers (adapters are not whitened)");
                    found.Add(($"{name}.{attentionName}.to_k", k));
                    found.Add(($"{name}.{attentionName}.to_v", v));
                }
        return found;
    }

    /// <summary>W·P for a projection's weight W [out, D]: the weight that reads the unwhitened states.</summary>
    public Tensor Fold(Tensor weight)
    {
        using var scope = NewDisposeScope();
        return weight.to(ScalarType.Float32).matmul(_matrix.to(weight.device)).to(weight.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Puts the folded weights into <paramref name="unet"/> until the result is disposed (validation images drawn with
    /// the text encoder as it is), then the trained ones back, bit for bit.
    /// </summary>
    public IDisposable FoldedInto(UNet2DConditionModel unet)
    {
        var kept = new List<(Linear Projection, Tensor Weight)>();
        try
        {
            using (no_grad())
                foreach (var (_, projection) in ContextProjections(unet))
                {
                    kept.Add((projection, projection.weight!.detach().clone()));
                    using var folded = Fold(projection.weight!);
                    projection.weight!.copy_(folded);
                }
        }
        catch
        {
            new Restore(kept).Dispose();   // an error part-way (out of memory in validation) leaves the trained weights as they were
            throw;
        }
        return new Restore(kept);
    }

    private sealed class Restore(List<(Linear Projection, Tensor Weight)> kept) : IDisposable
    {
        public void Dispose()
        {
            using (no_grad())
                foreach (var (projection, weight) in kept)
                {
                    projection.weight!.copy_(weight);
                    weight.Dispose();
                }
            kept.Clear();
        }
    }

    public void Dispose() => _matrix.Dispose();
}
