using System.Globalization;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.DreamBooth.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// An exponential moving average of the trained weights (diffusers' <c>EMAModel</c>, train_text_to_image.py's
/// --use_ema): after each optimizer step shadow ← d·shadow + (1 − d)·weight, with diffusers' default warm-up: the first
/// update takes the weights as they are (d = 0), update n + 1 uses d = min(max decay, (1 + n) / (10 + n)), so the first
/// steps do not pin the average to the initial weights. The shadows are fp32 copies on each weight's device;
/// checkpoints store them beside the weights.
/// </summary>
public sealed class EmaWeights : IDisposable
{
    public const string FileName = "ema.safetensors";

    private readonly IReadOnlyList<(string Name, Parameter Parameter)> _weights;
    private readonly Tensor[] _shadows;
    /// <summary>The trained weights while the average is in the model (<see cref="CopyIntoWeights"/>), else null.</summary>
    private Tensor[]? _stash;

    public double MaxDecay { get; }
    /// <summary>Updates taken since the average started (the warm-up's n).</summary>
    public long Updates { get; private set; }

    public EmaWeights(IReadOnlyList<(string Name, Parameter Parameter)> weights, double maxDecay)
    {
        if (!(maxDecay > 0 && maxDecay < 1)) throw new ArgumentOutOfRangeException(nameof(maxDecay), maxDecay, "the EMA decay must be in (0, 1)");
        MaxDecay = maxDecay;
        _weights = weights;
        _shadows = weights.Select(w =>
        {
            using var view = w.Parameter.detach();
            return view.to(ScalarType.Float32, copy: true).DetachFromDisposeScope();
        }).ToArray();
    }

    /// <summary>The decay of the next update (diffusers' EMAModel.get_decay: 0 for the first, then (1 + n) / (10 + n) capped).</summary>
    public double Decay => Updates == 0 ? 0 : Math.Min(MaxDecay, (1.0 + Updates) / (10.0 + Updates));

    /// <summary>The average, by weight name (fp32).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> Averages => _weights.Select((w, i) => new KeyValuePair<string, Tensor>(w.Name, _shadows[i]));

    public void Update()
    {
        double d = Decay;
        using var _ = no_grad();
        using var keep = d.ToScalar();
        using var take = (1 - d).ToScalar();
        for (int i = 0; i < _shadows.Length; i++)
        {
            var weight = _weights[i].Parameter;
            if (weight.dtype == ScalarType.Float32) _shadows[i].mul_(keep).add_(weight, take);
            else using (var wide = weight.to_type(ScalarType.Float32)) _shadows[i].mul_(keep).add_(wide, take);
        }
        Updates++;
    }

    /// <summary>Restarts the average at the current weights (a resume from a checkpoint written without one).</summary>
    public void Reset()
    {
        using var _ = no_grad();
        for (int i = 0; i < _shadows.Length; i++) _shadows[i].copy_(_weights[i].Parameter);
        Updates = 0;
    }

    /// <summary>Puts the average into the weights, keeping the trained values aside for <see cref="RestoreWeights"/>
    /// (diffusers' store + copy_to): validation images and the result use the average. The average itself is untouched.</summary>
    public void CopyIntoWeights()
    {
        if (_stash is not null) throw new InvalidOperationException("the average is in the weights already");
        using var _ = no_grad();
        _stash = new Tensor[_shadows.Length];
        for (int i = 0; i < _shadows.Length; i++)
        {
            var weight = _weights[i].Parameter;
            using (var view = weight.detach()) _stash[i] = view.clone().DetachFromDisposeScope();
            weight.copy_(_shadows[i]);
        }
    }

    /// <summary>Puts the trained values back after <see cref="CopyIntoWeights"/> (diffusers' restore).</summary>
    public void RestoreWeights()
    {
        if (_stash is null) throw new InvalidOperationException("the average is not in the weights");
        using var _ = no_grad();
        for (int i = 0; i < _shadows.Length; i++)
        {
            _weights[i].Parameter.copy_(_stash[i]);
            _stash[i].Dispose();
        }
        _stash = null;
    }

    public void Save(string path) =>
        SafetensorsWriter.Write(path, Averages, new Dictionary<string, string> { ["ema_updates"] = Updates.ToString(CultureInfo.InvariantCulture),
                                                                                ["ema_decay"] = MaxDecay.ToString("R", CultureInfo.InvariantCulture) });

    /// <summary>Reads a checkpoint's average into the shadows (every name and shape must match).</summary>
    public void Load(string path)
    {
        var metadata = CheckpointTensors.ReadInto(path, _weights.Select((w, i) => (w.Name, _shadows[i])).ToList());
        if (!metadata.TryGetValue("ema_updates", out var text) || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var updates))
            throw new InvalidCheckpointException($"{path}: no ema_updates count in the metadata");
        Updates = updates;
    }

    public void Dispose()
    {
        foreach (var s in _shadows) s.Dispose();
        foreach (var s in _stash ?? []) s.Dispose();
    }
}
