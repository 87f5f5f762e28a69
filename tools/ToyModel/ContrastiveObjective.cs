using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.Text;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Rendering;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// CLIP's symmetric InfoNCE loss over a batch of (scene, caption) pairs: each image must pick its own caption among the
/// batch's and each caption its image. The caption of scene i is a partial training caption drawn anew each epoch, so
/// the text encoder learns partial prompts as well as full ones.
/// <para>
/// Random scenes differ in colour, position and background long before they differ only in shape, so plain in-batch
/// negatives leave shape words nearly unlearned (measured: "circle" → "square" moved the text encoder's output 6%).
/// A share <paramref name="shapeTwinShare"/> of each batch is therefore given to shape twins
/// (<see cref="ToyWorld.World.ShapeTwin"/>): the first scenes' copies with another main shape and the caption's shape
/// word changed to match, hard negatives in the sense of Robinson et al. 2021 that only shape can separate.
/// </para>
/// </summary>
public sealed class ContrastiveObjective(ToyClip clip, SceneImages scenes, ClipTokenizer tokenizer, double shapeTwinShare = 0) : ITrainingObjective
{
    public double ShapeTwinShare { get; } = shapeTwinShare is >= 0 and <= 0.5 ? shapeTwinShare
        : throw new ArgumentOutOfRangeException(nameof(shapeTwinShare), shapeTwinShare, "the shape-twin share of a batch must be in 0..0.5");

    public Tensor Loss(Batch batch, TrainingRng rng)
    {
        using var scope = NewDisposeScope();
        var device = clip.text_projection.weight.device;
        var (images, captions) = Pairs(batch);
        var pixels = ScenePixels.Unit(images).to(device);
        var logits = clip.call(pixels, Tokens(captions, device));
        var labels = arange(logits.shape[0], ScalarType.Int64, device);
        var loss = (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.t(), labels)) / 2;
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>The batch's (image, caption) pairs: its scenes, the last <see cref="ShapeTwinShare"/> of them replaced by the first ones' shape twins.</summary>
    public (IReadOnlyList<RgbImage> Images, IReadOnlyList<string> Captions) Pairs(Batch batch)
    {
        var items = batch.Items;
        int twins = (int)(items.Count * ShapeTwinShare);
        var images = new List<RgbImage>(items.Count);
        var captions = new List<string>(items.Count);
        for (int k = 0; k < items.Count; k++)
        {
            int twinOf = k - (items.Count - twins);
            if (twinOf >= 0 && Twin(items[twinOf], batch.Epoch) is { } twin)
            {
                images.Add(twin.Image);
                captions.Add(twin.Caption);
                continue;
            }
            images.Add(scenes.Image(items[k]));
            captions.Add(scenes.World.TrainingCaption(scenes.SceneIndex(items[k]), batch.Epoch).ToText());
        }
        return (images, captions);
    }

    private (RgbImage Image, string Caption)? Twin(int item, long epoch)
    {
        long index = scenes.SceneIndex(item);
        if (scenes.World.ShapeTwin(index, epoch) is not { } scene) return null;
        var caption = scenes.World.TrainingCaption(index, epoch);
        caption = caption with { Main = caption.Main with { Shape = scene.Main.Shape } };
        return (SceneRenderer.Render(scene), caption.ToText());
    }

    public Tensor Tokens(IEnumerable<string> captions, Device device)
    {
        var rows = captions.Select(c => tokenizer.EncodeForModel(c).InputIds).ToArray();
        var flat = rows.SelectMany(r => r).ToArray();
        return tensor(flat, [rows.Length, tokenizer.MaxLength], ScalarType.Int64).to(device);
    }
}
