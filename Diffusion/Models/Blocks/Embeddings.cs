using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>Sinusoidal timestep features, diffusers' <c>Timesteps</c> / <c>get_timestep_embedding</c>.</summary>
public sealed class Timesteps : nn.Module<Tensor, Tensor>
{
    public int NumChannels { get; }
    public bool FlipSinToCos { get; }
    public double DownscaleFreqShift { get; }

    public Timesteps(int numChannels, bool flipSinToCos, double downscaleFreqShift) : base(nameof(Timesteps))
    {
        NumChannels = numChannels;
        FlipSinToCos = flipSinToCos;
        DownscaleFreqShift = downscaleFreqShift;
    }

    /// <param name="timesteps">1-D, one (possibly fractional) timestep per batch item.</param>
    public override Tensor forward(Tensor timesteps) =>
        GetTimestepEmbedding(timesteps, NumChannels, FlipSinToCos, DownscaleFreqShift);

    /// <summary>
    /// emb[i, j] = sin/cos(t_i * exp(-ln(max_period) * j / (half - shift))), float32, as in diffusers'
    /// embeddings.py (sin half first unless <paramref name="flipSinToCos"/>; odd dims are zero-padded).
    /// </summary>
    public static Tensor GetTimestepEmbedding(Tensor timesteps, int embeddingDim, bool flipSinToCos = false,
        double downscaleFreqShift = 1, double scale = 1, int maxPeriod = 10000)
    {
        if (timesteps.ndim != 1) throw new ArgumentException($"timesteps should be 1-D, got shape [{string.Join(", ", timesteps.shape)}].");
        using var scope = NewDisposeScope();
        int half = embeddingDim / 2;
        var exponent = arange(0, half, dtype: ScalarType.Float32, device: timesteps.device) * (-Math.Log(maxPeriod));
        exponent = exponent / (half - downscaleFreqShift);
        var freqs = exponent.exp();
        var args = timesteps.to_type(ScalarType.Float32).unsqueeze(1) * freqs.unsqueeze(0);
        if (scale != 1) args = args * scale;
        var emb = cat([args.sin(), args.cos()], -1);
        if (flipSinToCos) emb = cat([emb[.., half..], emb[.., ..half]], -1);
        if (embeddingDim % 2 == 1) emb = nn.functional.pad(emb, [0, 1, 0, 0]);
        return emb.MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers' <c>TimestepEmbedding</c>: linear_1 → activation → linear_2.</summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> linear_1;
    private readonly nn.Module<Tensor, Tensor> linear_2;
    private readonly string _act;

    public TimestepEmbedding(int inChannels, int timeEmbedDim, string actFn = "silu") : base(nameof(TimestepEmbedding))
    {
        linear_1 = Layers.Linear(inChannels, timeEmbedDim);
        linear_2 = Layers.Linear(timeEmbedDim, timeEmbedDim);
        _act = actFn;
        RegisterComponents();
    }

    public override Tensor forward(Tensor sample) => linear_2.call(Layers.Activation(_act, linear_1.call(sample)));
}
