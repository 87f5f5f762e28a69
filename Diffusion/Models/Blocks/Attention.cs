using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// diffusers' <c>Attention</c> with the standard processor: softmax(Q Kᵀ / sqrt(d)) V over <c>heads</c> heads, then
/// <c>to_out.0</c> (Linear) and <c>to_out.1</c> (Dropout). Without a context it is self-attention. The VAE's
/// mid-block variant adds <c>group_norm</c> on the input, a residual connection and division by
/// <c>rescale_output_factor</c>, and takes 4-D [B, C, H, W] input (flattened to H*W tokens).
/// </summary>
public sealed class Attention : nn.Module<Tensor, Tensor?, Tensor>
{
    // Projections are typed nn.Module<Tensor, Tensor> so an adapter can replace the registered child.
    public nn.Module<Tensor, Tensor> to_q;
    public nn.Module<Tensor, Tensor> to_k;
    public nn.Module<Tensor, Tensor> to_v;
    public readonly ModuleList<nn.Module<Tensor, Tensor>> to_out;
    private readonly nn.Module<Tensor, Tensor>? group_norm;

    public int Heads { get; }
    public int DimHead { get; }
    public bool ResidualConnection { get; }
    public double RescaleOutputFactor { get; }

    /// <param name="crossAttentionDim">Context width for to_k/to_v; null = self-attention (queryDim).</param>
    /// <param name="groupNormGroups">When set, a GroupNorm over the query channels is applied first (VAE).</param>
    public Attention(int queryDim, int heads, int dimHead, int? crossAttentionDim = null, bool bias = false,
        bool outBias = true, double dropout = 0.0, int? groupNormGroups = null, double groupNormEps = 1e-5,
        bool residualConnection = false, double rescaleOutputFactor = 1.0) : base(nameof(Attention))
    {
        Heads = heads;
        DimHead = dimHead;
        ResidualConnection = residualConnection;
        RescaleOutputFactor = rescaleOutputFactor;
        int inner = heads * dimHead;
        int context = crossAttentionDim ?? queryDim;
        if (groupNormGroups is int g) group_norm = Layers.GroupNorm(g, queryDim, groupNormEps);
        to_q = Layers.Linear(queryDim, inner, hasBias: bias);
        to_k = Layers.Linear(context, inner, hasBias: bias);
        to_v = Layers.Linear(context, inner, hasBias: bias);
        to_out = new ModuleList<nn.Module<Tensor, Tensor>>(Layers.Linear(inner, queryDim, hasBias: outBias), nn.Dropout(dropout));
        RegisterComponents();
    }

    public override Tensor forward(Tensor hiddenStates, Tensor? encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        var residual = hiddenStates;
        long b = hiddenStates.shape[0], c = 0, h = 0, w = 0;
        bool spatial = hiddenStates.ndim == 4;
        if (spatial)
        {
            (c, h, w) = (hiddenStates.shape[1], hiddenStates.shape[2], hiddenStates.shape[3]);
            hiddenStates = hiddenStates.view(b, c, h * w).transpose(1, 2);
        }
        if (group_norm is not null) hiddenStates = group_norm.call(hiddenStates.transpose(1, 2)).transpose(1, 2);

        var context = encoderHiddenStates ?? hiddenStates;
        var q = SplitHeads(to_q.call(hiddenStates));
        var k = SplitHeads(to_k.call(context));
        var v = SplitHeads(to_v.call(context));
        var attn = nn.functional.scaled_dot_product_attention(q, k, v); // scale 1/sqrt(dimHead), as upstream
        var output = attn.transpose(1, 2).reshape(b, -1, Heads * DimHead);
        foreach (var layer in to_out) output = layer.call(output);

        if (spatial) output = output.transpose(-1, -2).reshape(b, c, h, w);
        if (ResidualConnection) output = output + residual;
        return (RescaleOutputFactor == 1.0 ? output : output / RescaleOutputFactor).MoveToOuterDisposeScope();
    }

    private Tensor SplitHeads(Tensor x) => x.view(x.shape[0], x.shape[1], Heads, DimHead).transpose(1, 2);
}

/// <summary>diffusers' <c>GEGLU</c>: <c>proj</c> to 2x width, value half times GELU(gate half).</summary>
public sealed class GEGLU : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> proj;

    public GEGLU(int dimIn, int dimOut, bool bias = true) : base(nameof(GEGLU))
    {
        proj = Layers.Linear(dimIn, dimOut * 2, hasBias: bias);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var parts = proj.call(x).chunk(2, -1);
        return parts[0] * nn.functional.gelu(parts[1]);
    }
}

/// <summary>
/// diffusers' <c>FeedForward</c> with activation "geglu": <c>net.0</c> GEGLU (holding <c>net.0.proj</c>),
/// <c>net.1</c> Dropout, <c>net.2</c> Linear back to dim. A ModuleList (not a Sequential) so adapters can patch entries.
/// </summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    public readonly ModuleList<nn.Module<Tensor, Tensor>> net;

    public FeedForward(int dim, int mult = 4, double dropout = 0.0, bool bias = true) : base(nameof(FeedForward))
    {
        int inner = dim * mult;
        net = new ModuleList<nn.Module<Tensor, Tensor>>(new GEGLU(dim, inner, bias), nn.Dropout(dropout), Layers.Linear(inner, dim, hasBias: bias));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var layer in net) x = layer.call(x);
        return x.MoveToOuterDisposeScope();
    }
}
