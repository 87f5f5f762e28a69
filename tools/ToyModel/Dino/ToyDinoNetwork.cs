using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.ToyModel.Dino;

/// <summary>
/// What the toy DINO trains: the <see cref="encoder"/> and SimCLR's projection head (GELU, Linear, GELU, Linear) whose
/// normalised output the contrastive loss sees. Only the encoder is exported: as in SimCLR (Chen et al. 2020, §4.2),
/// the representation before the head keeps more of what the augmentations vary than the loss needs, here sizes.
/// </summary>
public sealed class ToyDinoNetwork : Module<Tensor, Tensor>
{
    public readonly ToyDinoEncoder encoder;
    public readonly Linear head1, head2;

    public ToyDinoNetwork(ToyDinoConfig config) : base(nameof(ToyDinoNetwork))
    {
        encoder = new ToyDinoEncoder(config.EmbedDim, config.Width);
        head1 = Linear(config.EmbedDim, 2 * config.EmbedDim);
        head2 = Linear(2 * config.EmbedDim, config.ProjectionDim);
        RegisterComponents();
    }

    /// <summary>L2-normalised projections [B, ProjectionDim] of pixels [B, 3, 56, 56] in [-1, 1].</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var h = functional.gelu(encoder.call(pixels));
        var z = head2.call(functional.gelu(head1.call(h)));
        return functional.normalize(z, dim: -1).MoveToOuterDisposeScope();
    }
}
