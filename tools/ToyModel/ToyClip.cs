using DiffusionPeft.Diffusion.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// The toy world's CLIP: the SD text encoder (<see cref="CLIPTextModel"/>, whose per-token states condition the UNet)
/// with CLIP's text projection of the pooled state, an image tower, and the learned temperature (Radford et al. 2021).
/// Module names follow transformers' CLIPModel where they exist (text_model, text_projection, logit_scale).
/// </summary>
public sealed class ToyClip : Module<Tensor, Tensor, Tensor>
{
    public readonly CLIPTextModel text_model;
    public readonly Linear text_projection;
    public readonly ToyImageEncoder vision_model;
    public readonly Parameter logit_scale;

    public ToyClip(ClipTextConfig text, int embedDim) : base(nameof(ToyClip))
    {
        text_model = new CLIPTextModel(text);
        text_projection = Linear(text.HiddenSize, embedDim, hasBias: false);
        vision_model = new ToyImageEncoder(embedDim);
        logit_scale = new Parameter(tensor(MathF.Log(1 / 0.07f)));   // CLIP's initial temperature 0.07
        RegisterComponents();
    }

    /// <summary>L2-normalised text embeddings [B, E] of token ids [B, S].</summary>
    public Tensor TextEmbeds(Tensor inputIds) => functional.normalize(text_projection.call(text_model.Forward(inputIds).PooledOutput), dim: -1);

    /// <summary>L2-normalised image embeddings [B, E] of pixels [B, 3, 64, 64] in [-1, 1].</summary>
    public Tensor ImageEmbeds(Tensor pixels) => functional.normalize(vision_model.call(pixels), dim: -1);

    /// <summary>Image-to-text logits [B, B], scaled by exp(logit_scale) (clamped at 100 as CLIP does).</summary>
    public override Tensor forward(Tensor pixels, Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var logits = ImageEmbeds(pixels).matmul(TextEmbeds(inputIds).t()) * logit_scale.exp().clamp_max(100f);
        return logits.MoveToOuterDisposeScope();
    }
}
