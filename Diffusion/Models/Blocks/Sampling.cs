using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// diffusers' <c>Downsample2D</c> with use_conv: a 3x3 stride-2 <c>conv</c>. With padding 0 (the VAE encoder)
/// the input is first padded by one zero row/column at the bottom/right, as upstream does.
/// </summary>
public sealed class Downsample2D : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv;
    private readonly int _padding;

    public Downsample2D(int channels, int outChannels, int padding) : base(nameof(Downsample2D))
    {
        conv = new ShapeAwareConv2d(channels, outChannels, 3, stride: 2, padding: padding);
        _padding = padding;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (_padding == 0) x = nn.functional.pad(x, [0, 1, 0, 1], TorchSharp.PaddingModes.Constant, 0);
        return conv.call(x);
    }
}

/// <summary>
/// diffusers' <c>Upsample2D</c> with use_conv: nearest-neighbour 2x (or to an explicit size, which the UNet
/// passes when the latent size is not divisible by 2^levels) then a 3x3 <c>conv</c>.
/// </summary>
public sealed class Upsample2D : nn.Module<Tensor, long[]?, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv;

    public Upsample2D(int channels, int outChannels) : base(nameof(Upsample2D))
    {
        conv = new ShapeAwareConv2d(channels, outChannels, 3, stride: 1, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, long[]? outputSize)
    {
        var up = outputSize is null
            ? nn.functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)
            : nn.functional.interpolate(x, size: outputSize, mode: InterpolationMode.Nearest);
        return conv.call(up);
    }
}
