using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>diffusers' <c>DownEncoderBlock2D</c>: resnets without time embedding, then an optional downsampler
/// (the VAE encoder uses padding 0, i.e. an asymmetric bottom/right zero pad).</summary>
public sealed class DownEncoderBlock2D(int inChannels, int outChannels, int numLayers, bool addDownsample, int downsamplePadding, UNetBlockSettings s)
    : ResnetStackDownBlock(nameof(DownEncoderBlock2D), inChannels, outChannels, numLayers, addDownsample, downsamplePadding, s, crossAttention: false);

/// <summary>diffusers' <c>UpDecoderBlock2D</c>: resnets without time embedding or skip states, then an optional upsampler.</summary>
public sealed class UpDecoderBlock2D : nn.Module<Tensor, Tensor>
{
    public readonly ModuleList<ResnetBlock2D> resnets;
    public readonly ModuleList<Upsample2D>? upsamplers;

    public UpDecoderBlock2D(int inChannels, int outChannels, int numLayers, bool addUpsample, UNetBlockSettings s) : base(nameof(UpDecoderBlock2D))
    {
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers)
            .Select(i => BlockFactory.Resnet(i == 0 ? inChannels : outChannels, outChannels, s)).ToArray());
        if (addUpsample) upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, outChannels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        foreach (var r in resnets) hidden = r.call(hidden, null);
        if (upsamplers is not null)
            foreach (var u in upsamplers) hidden = u.call(hidden, null);
        return hidden;
    }
}

/// <summary>
/// diffusers' <c>UNetMidBlock2D</c> as the VAE builds it: resnet, then (attention, resnet) pairs. The attention is
/// single-head over all channels (attention_head_dim = channels), with <c>group_norm</c>, biased projections, a
/// residual connection and rescale_output_factor = output_scale_factor.
/// </summary>
public sealed class UNetMidBlock2D : nn.Module<Tensor, Tensor?, Tensor>
{
    public readonly ModuleList<Attention>? attentions;
    public readonly ModuleList<ResnetBlock2D> resnets;
    private readonly int _numLayers;

    public UNetMidBlock2D(int channels, UNetBlockSettings s, int attentionHeadDim, bool addAttention = true,
        double outputScaleFactor = 1.0, int numLayers = 1) : base(nameof(UNetMidBlock2D))
    {
        if (channels % attentionHeadDim != 0)
            throw new NotSupportedException($"UNetMidBlock2D: {channels} channels are not divisible by attention_head_dim {attentionHeadDim}.");
        _numLayers = numLayers;
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers + 1)
            .Select(_ => BlockFactory.Resnet(channels, channels, s, outputScaleFactor)).ToArray());
        if (addAttention)
            attentions = new ModuleList<Attention>(Enumerable.Range(0, numLayers).Select(_ =>
                new Attention(channels, channels / attentionHeadDim, attentionHeadDim, bias: true, groupNormGroups: s.Groups,
                    groupNormEps: s.Eps, residualConnection: true, rescaleOutputFactor: outputScaleFactor)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor? temb)
    {
        hidden = resnets[0].call(hidden, temb);
        for (int i = 0; i < _numLayers; i++)
        {
            if (attentions is not null) hidden = attentions[i].call(hidden, null);
            hidden = resnets[i + 1].call(hidden, temb);
        }
        return hidden;
    }
}
