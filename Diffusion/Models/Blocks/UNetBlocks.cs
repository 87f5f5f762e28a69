using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>Settings every UNet/VAE block shares (from the model config); no time embedding (VAE) when TembChannels is null.</summary>
public sealed record UNetBlockSettings(int? TembChannels, int Groups, double Eps, string ActFn, double Dropout,
    int CrossAttentionDim, int NumAttentionHeads, int TransformerLayers, bool UseLinearProjection, bool OnlyCrossAttention = false);

/// <summary>A down block: returns the block output and the skip states (one per resnet, plus the downsampler's).</summary>
public abstract class UNetDownBlock(string name) : nn.Module(name)
{
    public abstract (Tensor Hidden, List<Tensor> Skips) Forward(Tensor hidden, Tensor? temb, Tensor? encoderHiddenStates);
}

/// <summary>An up block: consumes one skip state per resnet (last first) and optionally upsamples to a given size.</summary>
public abstract class UNetUpBlock(string name) : nn.Module(name)
{
    public abstract int NumResnets { get; }
    public abstract Tensor Forward(Tensor hidden, IReadOnlyList<Tensor> skips, Tensor? temb, Tensor? encoderHiddenStates, long[]? upsampleSize);
}

internal static class BlockFactory
{
    public static ResnetBlock2D Resnet(int inCh, int outCh, UNetBlockSettings s, double outputScaleFactor = 1.0) =>
        new(inCh, outCh, s.TembChannels, s.Groups, s.Eps, s.ActFn, outputScaleFactor, s.Dropout);

    /// <summary>diffusers passes the head COUNT and derives the head width as channels / heads.</summary>
    public static Transformer2DModel Transformer(int channels, UNetBlockSettings s)
    {
        if (channels % s.NumAttentionHeads != 0)
            throw new NotSupportedException($"{channels} channels are not divisible by {s.NumAttentionHeads} attention heads.");
        return new Transformer2DModel(s.NumAttentionHeads, channels / s.NumAttentionHeads, channels, s.TransformerLayers,
            s.CrossAttentionDim, s.Groups, s.UseLinearProjection, s.OnlyCrossAttention);
    }
}

/// <summary>diffusers' <c>CrossAttnDownBlock2D</c>: resnets each followed by a transformer, then an optional downsampler.</summary>
public sealed class CrossAttnDownBlock2D(int inChannels, int outChannels, int numLayers, bool addDownsample, int downsamplePadding, UNetBlockSettings s)
    : ResnetStackDownBlock(nameof(CrossAttnDownBlock2D), inChannels, outChannels, numLayers, addDownsample, downsamplePadding, s, crossAttention: true);

/// <summary>diffusers' <c>DownBlock2D</c>: resnets, then an optional downsampler.</summary>
public sealed class DownBlock2D(int inChannels, int outChannels, int numLayers, bool addDownsample, int downsamplePadding, UNetBlockSettings s)
    : ResnetStackDownBlock(nameof(DownBlock2D), inChannels, outChannels, numLayers, addDownsample, downsamplePadding, s, crossAttention: false);

/// <summary>The shared body of the UNet down blocks: resnets (each followed by a transformer when cross-attention is
/// on), then an optional stride-2 downsampler; every intermediate state is a skip state.</summary>
public abstract class ResnetStackDownBlock : UNetDownBlock
{
    public readonly ModuleList<ResnetBlock2D> resnets;
    public readonly ModuleList<Transformer2DModel>? attentions;
    public readonly ModuleList<Downsample2D>? downsamplers;

    protected ResnetStackDownBlock(string name, int inChannels, int outChannels, int numLayers, bool addDownsample, int downsamplePadding,
        UNetBlockSettings s, bool crossAttention) : base(name)
    {
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers)
            .Select(i => BlockFactory.Resnet(i == 0 ? inChannels : outChannels, outChannels, s)).ToArray());
        if (crossAttention)
            attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, numLayers).Select(_ => BlockFactory.Transformer(outChannels, s)).ToArray());
        if (addDownsample) downsamplers = new ModuleList<Downsample2D>(new Downsample2D(outChannels, outChannels, downsamplePadding));
        RegisterComponents();
    }

    public override (Tensor Hidden, List<Tensor> Skips) Forward(Tensor hidden, Tensor? temb, Tensor? encoderHiddenStates)
    {
        var skips = new List<Tensor>();
        for (int i = 0; i < resnets.Count; i++)
        {
            hidden = resnets[i].call(hidden, temb);
            if (attentions is not null) hidden = attentions[i].call(hidden, encoderHiddenStates);
            skips.Add(hidden);
        }
        if (downsamplers is not null)
        {
            foreach (var d in downsamplers) hidden = d.call(hidden);
            skips.Add(hidden);
        }
        return (hidden, skips);
    }
}

/// <summary>diffusers' <c>CrossAttnUpBlock2D</c>: (skip-concat, resnet, transformer) per layer, then an optional upsampler.</summary>
public sealed class CrossAttnUpBlock2D(int inChannels, int outChannels, int prevOutputChannels, int numLayers, bool addUpsample, UNetBlockSettings s)
    : ResnetStackUpBlock(nameof(CrossAttnUpBlock2D), inChannels, outChannels, prevOutputChannels, numLayers, addUpsample, s, crossAttention: true);

/// <summary>diffusers' <c>UpBlock2D</c>: (skip-concat, resnet) per layer, then an optional upsampler.</summary>
public sealed class UpBlock2D(int inChannels, int outChannels, int prevOutputChannels, int numLayers, bool addUpsample, UNetBlockSettings s)
    : ResnetStackUpBlock(nameof(UpBlock2D), inChannels, outChannels, prevOutputChannels, numLayers, addUpsample, s, crossAttention: false);

/// <summary>The shared body of the UNet up blocks: each resnet takes the hidden state concatenated with a skip state
/// (deepest first); optional transformers; an optional 2x upsampler.</summary>
public abstract class ResnetStackUpBlock : UNetUpBlock
{
    public readonly ModuleList<ResnetBlock2D> resnets;
    public readonly ModuleList<Transformer2DModel>? attentions;
    public readonly ModuleList<Upsample2D>? upsamplers;

    /// <param name="inChannels">Channels of the deepest skip state (the next-shallower level's width).</param>
    /// <param name="prevOutputChannels">Channels coming from the previous up block (or the mid block).</param>
    protected ResnetStackUpBlock(string name, int inChannels, int outChannels, int prevOutputChannels, int numLayers, bool addUpsample,
        UNetBlockSettings s, bool crossAttention) : base(name)
    {
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers).Select(i =>
        {
            int skip = i == numLayers - 1 ? inChannels : outChannels;
            int resIn = i == 0 ? prevOutputChannels : outChannels;
            return BlockFactory.Resnet(resIn + skip, outChannels, s);
        }).ToArray());
        if (crossAttention)
            attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, numLayers).Select(_ => BlockFactory.Transformer(outChannels, s)).ToArray());
        if (addUpsample) upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, outChannels));
        RegisterComponents();
    }

    public override int NumResnets => resnets.Count;

    public override Tensor Forward(Tensor hidden, IReadOnlyList<Tensor> skips, Tensor? temb, Tensor? encoderHiddenStates, long[]? upsampleSize)
    {
        if (skips.Count != resnets.Count) throw new ArgumentException($"expected {resnets.Count} skip states, got {skips.Count}.");
        for (int i = 0; i < resnets.Count; i++)
        {
            hidden = cat([hidden, skips[skips.Count - 1 - i]], 1);
            hidden = resnets[i].call(hidden, temb);
            if (attentions is not null) hidden = attentions[i].call(hidden, encoderHiddenStates);
        }
        if (upsamplers is not null)
            foreach (var u in upsamplers) hidden = u.call(hidden, upsampleSize);
        return hidden;
    }
}

/// <summary>diffusers' <c>UNetMidBlock2DCrossAttn</c>: resnet, then (transformer, resnet) pairs at constant width.</summary>
public sealed class UNetMidBlock2DCrossAttn : nn.Module<Tensor, Tensor, Tensor?, Tensor>
{
    public readonly ModuleList<Transformer2DModel> attentions;
    public readonly ModuleList<ResnetBlock2D> resnets;

    public UNetMidBlock2DCrossAttn(int channels, UNetBlockSettings s, double outputScaleFactor, int numLayers = 1)
        : base(nameof(UNetMidBlock2DCrossAttn))
    {
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, numLayers + 1)
            .Select(_ => BlockFactory.Resnet(channels, channels, s, outputScaleFactor)).ToArray());
        attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, numLayers).Select(_ => BlockFactory.Transformer(channels, s)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor temb, Tensor? encoderHiddenStates)
    {
        hidden = resnets[0].call(hidden, temb);
        for (int i = 0; i < attentions.Count; i++)
        {
            hidden = attentions[i].call(hidden, encoderHiddenStates);
            hidden = resnets[i + 1].call(hidden, temb);
        }
        return hidden;
    }
}
