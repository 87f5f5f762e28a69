using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// The toy CLIP's image tower: four stride-2 3×3 convolutions (64 → 4 px) with GELU, flattened (position matters in
/// this world, so no global pooling), and a two-layer head to the shared embedding width. Plain ops only, so that it
/// exports to ONNX as it is.
/// </summary>
public sealed class ToyImageEncoder : Module<Tensor, Tensor>
{
    public readonly Conv2d conv1, conv2, conv3, conv4;
    public readonly Linear fc1, fc2;

    public ToyImageEncoder(int embedDim, int width = 32) : base(nameof(ToyImageEncoder))
    {
        conv1 = Conv2d(3, width, 3, stride: 2, padding: 1);
        conv2 = Conv2d(width, 2 * width, 3, stride: 2, padding: 1);
        conv3 = Conv2d(2 * width, 4 * width, 3, stride: 2, padding: 1);
        conv4 = Conv2d(4 * width, 4 * width, 3, stride: 2, padding: 1);
        fc1 = Linear(4 * width * 16, 2 * embedDim);
        fc2 = Linear(2 * embedDim, embedDim);
        RegisterComponents();
    }

    /// <param name="pixels">[B, 3, 64, 64] in [-1, 1].</param>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = functional.gelu(conv1.call(pixels));
        x = functional.gelu(conv2.call(x));
        x = functional.gelu(conv3.call(x));
        x = functional.gelu(conv4.call(x));
        x = functional.gelu(fc1.call(x.flatten(1)));
        return fc2.call(x).MoveToOuterDisposeScope();
    }
}
