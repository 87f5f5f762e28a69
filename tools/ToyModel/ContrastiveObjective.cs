using DiffusionPeft.Core.Text;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// CLIP's symmetric InfoNCE loss over a batch of (scene, caption) pairs: each image must pick its own caption among the
/// batch's and each caption its image. The caption of scene i is a partial training caption drawn anew each epoch, so
/// the text encoder learns partial prompts as well as full ones.
/// </summary>
public sealed class ContrastiveObjective(ToyClip clip, SceneImages scenes, ClipTokenizer tokenizer) : ITrainingObjective
{
    public Tensor Loss(Batch batch, TrainingRng rng)
    {
        using var scope = NewDisposeScope();
        var device = clip.text_projection.weight.device;
        var pixels = scenes.Pixels(batch.Items, device);
        var ids = Tokens(batch.Items.Select(i => scenes.World.TrainingCaption(scenes.SceneIndex(i), batch.Epoch).ToText()), device);
        var logits = clip.call(pixels, ids);
        var labels = arange(logits.shape[0], ScalarType.Int64, device);
        var loss = (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.t(), labels)) / 2;
        return loss.MoveToOuterDisposeScope();
    }

    public Tensor Tokens(IEnumerable<string> captions, Device device) => Tokens(tokenizer, captions, device);

    /// <summary>Token ids [N, context] of the captions, padded to the tokenizer's context, on <paramref name="device"/>.</summary>
    public static Tensor Tokens(ClipTokenizer tokenizer, IEnumerable<string> captions, Device device)
    {
        var rows = captions.Select(c => tokenizer.EncodeForModel(c).InputIds).ToArray();
        var flat = rows.SelectMany(r => r).ToArray();
        return tensor(flat, [rows.Length, tokenizer.MaxLength], ScalarType.Int64).to(device);
    }
}
