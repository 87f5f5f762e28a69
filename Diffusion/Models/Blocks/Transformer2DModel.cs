using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// diffusers' <c>BasicTransformerBlock</c> (norm_type "layer_norm"): pre-norm self-attention (<c>norm1</c>/<c>attn1</c>),
/// cross-attention to the text context (<c>norm2</c>/<c>attn2</c>) and a GEGLU feed-forward (<c>norm3</c>/<c>ff</c>), each residual.
/// With <c>only_cross_attention</c> <c>attn1</c> attends to the text context too (no self-attention: its keys and values
/// come from the context, so it costs the context's length, not the square of the positions).
/// </summary>
public sealed class BasicTransformerBlock : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> norm1;
    public readonly Attention attn1;
    private readonly nn.Module<Tensor, Tensor> norm2;
    public readonly Attention attn2;
    private readonly nn.Module<Tensor, Tensor> norm3;
    public readonly FeedForward ff;

    private readonly bool _onlyCrossAttention;

    public BasicTransformerBlock(int dim, int heads, int dimHead, int crossAttentionDim, bool onlyCrossAttention = false) : base(nameof(BasicTransformerBlock))
    {
        _onlyCrossAttention = onlyCrossAttention;
        norm1 = Layers.LayerNorm(dim, eps: 1e-5);
        attn1 = onlyCrossAttention ? new Attention(dim, heads, dimHead, crossAttentionDim) : new Attention(dim, heads, dimHead);
        norm2 = Layers.LayerNorm(dim, eps: 1e-5);
        attn2 = new Attention(dim, heads, dimHead, crossAttentionDim);
        norm3 = Layers.LayerNorm(dim, eps: 1e-5);
        ff = new FeedForward(dim);
        RegisterComponents();
    }

    /// <summary>The attentions that read the caption's states, by child name: attn2, and attn1 in a cross-only block.</summary>
    public IEnumerable<(Attention Attention, string Name)> ContextAttentions()
    {
        if (_onlyCrossAttention) yield return (attn1, nameof(attn1));
        yield return (attn2, nameof(attn2));
    }

    public override Tensor forward(Tensor hidden, Tensor? encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        hidden = attn1.call(norm1.call(hidden), _onlyCrossAttention ? encoderHiddenStates : null) + hidden;
        hidden = attn2.call(norm2.call(hidden), encoderHiddenStates) + hidden;
        return (ff.call(norm3.call(hidden)) + hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers' <c>Transformer2DModel</c> for continuous input: GroupNorm <c>norm</c> (eps 1e-6), <c>proj_in</c>,
/// <c>transformer_blocks</c>, <c>proj_out</c>, plus the input. The projections are 1x1 convolutions (SD 1.x) or
/// Linear layers over tokens (<c>use_linear_projection</c>, SD 2.x).
/// </summary>
public sealed class Transformer2DModel : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> norm;
    public nn.Module<Tensor, Tensor> proj_in;
    public readonly ModuleList<BasicTransformerBlock> transformer_blocks;

    /// <summary>Recompute each transformer block in the backward pass instead of keeping its activations (training only).</summary>
    public bool GradientCheckpointing { get; set; }
    public nn.Module<Tensor, Tensor> proj_out;
    private readonly bool _linear;

    public Transformer2DModel(int heads, int dimHead, int inChannels, int numLayers, int crossAttentionDim,
        int normNumGroups, bool useLinearProjection, bool onlyCrossAttention = false) : base(nameof(Transformer2DModel))
    {
        int inner = heads * dimHead;
        _linear = useLinearProjection;
        norm = Layers.GroupNorm(normNumGroups, inChannels, 1e-6);
        proj_in = useLinearProjection ? Layers.Linear(inChannels, inner) : new ShapeAwareConv2d(inChannels, inner, 1);
        transformer_blocks = new ModuleList<BasicTransformerBlock>(
            Enumerable.Range(0, numLayers).Select(_ => new BasicTransformerBlock(inner, heads, dimHead, crossAttentionDim, onlyCrossAttention)).ToArray());
        proj_out = useLinearProjection ? Layers.Linear(inner, inChannels) : new ShapeAwareConv2d(inner, inChannels, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], h = hidden.shape[2], w = hidden.shape[3];
        var residual = hidden;
        var x = norm.call(hidden);
        if (!_linear) x = proj_in.call(x);
        long inner = x.shape[1];
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, inner);
        if (_linear) x = proj_in.call(x);
        foreach (var block in transformer_blocks)
            x = GradientCheckpointing && training ? ActivationCheckpoint.Run(block, x, encoderHiddenStates) : block.call(x, encoderHiddenStates);
        if (_linear) x = proj_out.call(x);
        x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2);   // a channels-last view: the 1x1 proj_out reads it as is
        if (!_linear) x = proj_out.call(x);
        return (x + residual).MoveToOuterDisposeScope();
    }
}
