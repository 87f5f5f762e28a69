using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.ToyModel.Dino;

/// <summary>
/// The toy DINO's image encoder: four 3×3 convolutions with GELU (56 → 28 → 14 → 7 → 7 px), global average and
/// global max pooling side by side (where an object is does not matter; max pooling keeps a small object from
/// drowning in its background), and a linear map to the embedding. Plain ops only, so that it exports to ONNX as it is.
/// </summary>
public sealed class ToyDinoEncoder : Module<Tensor, Tensor>
{
    /// <summary>The central 56 px of a 64 px scene: what DINO's Resize(256) + CenterCrop(224) keeps, at 1×.</summary>
    public const int InputSize = 56;
    public readonly Conv2d conv1, conv2, conv3, conv4;
    public readonly Linear fc;

    public int EmbedDim { get; }
    public int Width { get; }

    public ToyDinoEncoder(int embedDim, int width) : base(nameof(ToyDinoEncoder))
    {
        EmbedDim = embedDim;
        Width = width;
        conv1 = Conv2d(3, width, 3, stride: 2, padding: 1);
        conv2 = Conv2d(width, 2 * width, 3, stride: 2, padding: 1);
        conv3 = Conv2d(2 * width, 4 * width, 3, stride: 2, padding: 1);
        conv4 = Conv2d(4 * width, 4 * width, 3, stride: 1, padding: 1);
        fc = Linear(8 * width, embedDim);
        RegisterComponents();
    }

    /// <param name="pixels">[B, 3, 56, 56] in [-1, 1].</param>
    /// <returns>[B, embedDim], not normalised.</returns>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = functional.gelu(conv1.call(pixels));
        x = functional.gelu(conv2.call(x));
        x = functional.gelu(conv3.call(x));
        x = functional.gelu(conv4.call(x));
        var pooled = cat([x.mean([2, 3]), x.amax([2, 3])], 1);
        return fc.call(pooled).MoveToOuterDisposeScope();
    }
}
