using DiffusionPeft.ToyWorld;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>Held-out retrieval of the toy CLIP: each scene's image must rank its own full caption first among all the scenes' captions, and vice versa.</summary>
public sealed record ToyClipRetrieval(double CaptionTop1, double ImageTop1, int Candidates)
{
    public static ToyClipRetrieval HeldOut(ToyClip clip, ContrastiveObjective tokens, World world, int scenes, Device device)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        clip.eval();
        var images = new SceneImages(world, scenes, World.HeldOutStart);
        var items = Enumerable.Range(0, scenes).ToArray();
        var imageEmbeds = cat(items.Chunk(64).Select(c => clip.ImageEmbeds(images.Pixels(c, device))).ToArray());
        var captions = items.Select(i => world.FullCaption(images.SceneIndex(i)).ToText());
        var textEmbeds = cat(captions.Chunk(64).Select(c => clip.TextEmbeds(tokens.Tokens(c, device))).ToArray());
        var similarity = imageEmbeds.matmul(textEmbeds.t());
        var truth = arange(scenes, ScalarType.Int64, device);
        double captionTop1 = similarity.argmax(1).eq(truth).to_type(ScalarType.Float32).mean().item<float>();
        double imageTop1 = similarity.argmax(0).eq(truth).to_type(ScalarType.Float32).mean().item<float>();
        clip.train();
        return new ToyClipRetrieval(captionTop1, imageTop1, scenes);
    }
}
