using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// diffusers' <c>ResnetBlock2D</c> (time_embedding_norm "default"): norm1 → act → conv1 (+ time_emb_proj(act(temb)))
/// → norm2 → act → dropout → conv2, plus the (1x1 <c>conv_shortcut</c> when channels change) input, divided by
/// output_scale_factor.
/// </summary>
public sealed class ResnetBlock2D : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> norm1;
    private readonly nn.Module<Tensor, Tensor> conv1;
    private readonly nn.Module<Tensor, Tensor>? time_emb_proj;
    private readonly nn.Module<Tensor, Tensor> norm2;
    private readonly nn.Module<Tensor, Tensor> dropout;
    private readonly nn.Module<Tensor, Tensor> conv2;
    private readonly nn.Module<Tensor, Tensor>? conv_shortcut;
    private readonly string _act;
    private readonly double _outputScaleFactor;

    public int InChannels { get; }
    public int OutChannels { get; }

    /// <param name="tembChannels">null for the VAE's blocks, which have no <c>time_emb_proj</c>.</param>
    public ResnetBlock2D(int inChannels, int outChannels, int? tembChannels, int groups, double eps,
        string actFn = "silu", double outputScaleFactor = 1.0, double dropout = 0.0) : base(nameof(ResnetBlock2D))
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        norm1 = Layers.GroupNorm(groups, inChannels, eps);
        conv1 = new ShapeAwareConv2d(inChannels, outChannels, 3, stride: 1, padding: 1);
        if (tembChannels is int t) time_emb_proj = Layers.Linear(t, outChannels);
        norm2 = Layers.GroupNorm(groups, outChannels, eps);
        this.dropout = nn.Dropout(dropout);
        conv2 = new ShapeAwareConv2d(outChannels, outChannels, 3, stride: 1, padding: 1);
        if (inChannels != outChannels) conv_shortcut = new ShapeAwareConv2d(inChannels, outChannels, 1);
        _act = actFn;
        _outputScaleFactor = outputScaleFactor;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input, Tensor? temb)
    {
        // Intermediates die with the block (a dispose scope per block keeps forward memory at one block's worth).
        using var scope = NewDisposeScope();
        var h = conv1.call(Layers.Activation(_act, norm1.call(input)));
        if (time_emb_proj is not null && temb is not null)
            h = h + time_emb_proj.call(Layers.Activation(_act, temb)).unsqueeze(-1).unsqueeze(-1);
        h = norm2.call(h);
        h = conv2.call(dropout.call(Layers.Activation(_act, h)));
        var shortcut = conv_shortcut is null ? input : conv_shortcut.call(input);
        var output = shortcut + h;
        return (_outputScaleFactor == 1.0 ? output : output / _outputScaleFactor).MoveToOuterDisposeScope();
    }
}
