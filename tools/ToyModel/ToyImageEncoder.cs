using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// The toy CLIP's image tower: a 2×2 average pool (64 → 32 px; the ONNX export reaches the same 32 px from CLIP's
/// 224 px input with a 7×7 pool), three stride-2 3×3 convolutions (32 → 4 px) with GELU, flattened (position matters
/// in this world, so no global pooling), and a two-layer head to the shared embedding width. Plain ops only, so that
/// it exports to ONNX as it is.
/// </summary>
public sealed class ToyImageEncoder : Module<Tensor, Tensor>
{
    public const int InputSize = 32;
    public readonly Conv2d conv1, conv2, conv3;
    public readonly Linear fc1, fc2;

    /// <param name="inChannels">3 (RGB); more where a caller puts its own layers before <see cref="Embed"/>.</param>
    public ToyImageEncoder(int embedDim, int width = 32, int inChannels = 3) : base(nameof(ToyImageEncoder))
    {
        conv1 = Conv2d(inChannels, width, 3, stride: 2, padding: 1);
        conv2 = Conv2d(width, 2 * width, 3, stride: 2, padding: 1);
        conv3 = Conv2d(2 * width, 4 * width, 3, stride: 2, padding: 1);
        fc1 = Linear(4 * width * 16, 2 * embedDim);
        fc2 = Linear(2 * embedDim, embedDim);
        RegisterComponents();
    }

    /// <param name="pixels">[B, 3, 64, 64] in [-1, 1].</param>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return Embed(functional.avg_pool2d(pixels, 2)).MoveToOuterDisposeScope();
    }

    /// <summary>The tower after the pool: [B, inChannels, 32, 32] (RGB: in [-1, 1]) → [B, embedDim].</summary>
    public Tensor Embed(Tensor pixels32)
    {
        using var scope = NewDisposeScope();
        var x = functional.gelu(conv1.call(pixels32));
        x = functional.gelu(conv2.call(x));
        x = functional.gelu(conv3.call(x));
        x = functional.gelu(fc1.call(x.flatten(1)));
        return fc2.call(x).MoveToOuterDisposeScope();
    }
}
