using TorchSharp;
using TorchSharp.Modules;
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

/// <summary>
/// diffusers' <c>AttentionPooling</c> (from DeepFloyd IF): a class token, the mean of the tokens plus a learned
/// <c>positional_embedding</c>, attends over itself and the tokens with <c>num_heads</c> heads; its output (no output
/// projection) is the pooled vector [B, W].
/// </summary>
public sealed class AttentionPooling : nn.Module<Tensor, Tensor>
{
    private readonly Parameter positional_embedding;
    private readonly nn.Module<Tensor, Tensor> k_proj;
    private readonly nn.Module<Tensor, Tensor> q_proj;
    private readonly nn.Module<Tensor, Tensor> v_proj;
    private readonly int _heads;

    public AttentionPooling(int heads, int embedDim) : base(nameof(AttentionPooling))
    {
        if (heads < 1 || embedDim % heads != 0)
            throw new ArgumentException($"AttentionPooling: {heads} heads must divide the width {embedDim}");
        _heads = heads;
        using (var noise = randn(1, embedDim)) positional_embedding = new Parameter(noise / Math.Sqrt(embedDim));
        k_proj = Layers.Linear(embedDim, embedDim);
        q_proj = Layers.Linear(embedDim, embedDim);
        v_proj = Layers.Linear(embedDim, embedDim);
        RegisterComponents();
    }

    /// <param name="x">Tokens [B, L, W].</param>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], width = x.shape[2], dimHead = width / _heads;
        var classToken = x.mean([1], keepdim: true) + positional_embedding.to_type(x.dtype);
        var tokens = cat([classToken, x], 1);
        Tensor Heads(Tensor t) => t.view(b, -1, _heads, dimHead).transpose(1, 2);   // [B, heads, L, d]
        // One query: a plain softmax(q kᵀ / √d) v, with the softmax in float32 and q, k each scaled by d^-¼ as upstream.
        double scale = 1 / Math.Sqrt(Math.Sqrt(dimHead));
        var weight = (Heads(q_proj.call(classToken)) * scale).matmul((Heads(k_proj.call(tokens)) * scale).transpose(-1, -2));
        weight = weight.to_type(ScalarType.Float32).softmax(-1).to_type(weight.dtype);
        return weight.matmul(Heads(v_proj.call(tokens))).reshape(b, width).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers' <c>TextTimeEmbedding</c> (<c>addition_embed_type: "text"</c>, DeepFloyd IF's UNet): the text states
/// pooled by attention and projected to the time-embedding width (norm1 → pool → proj → norm2); the UNet adds it to the
/// timestep embedding, so the caption reaches every ResNet block of every level, not only the attention levels.
/// </summary>
public sealed class TextTimeEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> norm1;
    private readonly AttentionPooling pool;
    private readonly nn.Module<Tensor, Tensor> proj;
    private readonly nn.Module<Tensor, Tensor> norm2;

    public TextTimeEmbedding(int encoderDim, int timeEmbedDim, int heads) : base(nameof(TextTimeEmbedding))
    {
        norm1 = Layers.LayerNorm(encoderDim, 1e-5);
        pool = new AttentionPooling(heads, encoderDim);
        proj = Layers.Linear(encoderDim, timeEmbedDim);
        norm2 = Layers.LayerNorm(timeEmbedDim, 1e-5);
        RegisterComponents();
    }

    /// <param name="hiddenStates">Text states [B, L, encoderDim].</param>
    public override Tensor forward(Tensor hiddenStates) => norm2.call(proj.call(pool.call(norm1.call(hiddenStates))));
}
