using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Grammar;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// Held-out retrieval of the toy CLIP: each scene's image must rank its own full caption first among all the scenes'
/// captions, and vice versa; and (<see cref="ShapeTop1"/>) its caption first among the same caption with each other
/// shape word, which only a model that sees shapes can do (chance 1/8).
/// </summary>
public sealed record ToyClipRetrieval(double CaptionTop1, double ImageTop1, int Candidates, double ShapeTop1)
{
    public static ToyClipRetrieval HeldOut(ToyClip clip, ContrastiveObjective tokens, World world, int scenes, Device device)
    {
        clip.eval();
        try { return HeldOut(clip.ImageEmbeds, clip.TextEmbeds, captions => tokens.Tokens(captions, device), world, scenes, device); }
        finally { clip.train(); }
    }

    /// <summary>
    /// The same for any pair of towers: L2-normalised image embeddings of pixels [B, 3, 64, 64] and text embeddings of
    /// token ids; caption retrieval among the first <paramref name="captionCandidates"/> scenes (all by default).
    /// </summary>
    public static ToyClipRetrieval HeldOut(Func<Tensor, Tensor> imageEmbedder, Func<Tensor, Tensor> textEmbedder, Func<IEnumerable<string>, Tensor> tokens,
                                           World world, int scenes, Device device, int captionCandidates = int.MaxValue)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var images = new SceneImages(world, scenes, World.HeldOutStart);
        var items = Enumerable.Range(0, scenes).ToArray();
        var imageEmbeds = cat(items.Chunk(64).Select(c => imageEmbedder(images.Pixels(c, device))).ToArray());
        var fullCaptions = items.Select(i => world.FullCaption(images.SceneIndex(i))).ToArray();
        var textEmbeds = cat(fullCaptions.Select(c => c.ToText()).Chunk(64).Select(c => textEmbedder(tokens(c))).ToArray());
        int n = Math.Min(scenes, captionCandidates);
        var similarity = imageEmbeds[..n].matmul(textEmbeds[..n].t());
        var truth = arange(n, ScalarType.Int64, device);
        double captionTop1 = similarity.argmax(1).eq(truth).to_type(ScalarType.Float32).mean().item<float>();
        double imageTop1 = similarity.argmax(0).eq(truth).to_type(ScalarType.Float32).mean().item<float>();

        var shapes = Enum.GetValues<ToyShape>();
        var shapeCaptions = fullCaptions.SelectMany(c => shapes.Select(s => (c with { Main = c.Main with { Shape = s } }).ToText()));
        var shapeEmbeds = cat(shapeCaptions.Chunk(256).Select(c => textEmbedder(tokens(c))).ToArray()).view(scenes, shapes.Length, -1);
        var shapeScores = shapeEmbeds.matmul(imageEmbeds.unsqueeze(-1)).squeeze(-1);   // [scenes, shapes]
        var shapeTruth = tensor(fullCaptions.Select(c => (long)Array.IndexOf(shapes, c.Main.Shape)).ToArray(), ScalarType.Int64).to(device);
        double shapeTop1 = shapeScores.argmax(1).eq(shapeTruth).to_type(ScalarType.Float32).mean().item<float>();
        return new ToyClipRetrieval(captionTop1, imageTop1, n, shapeTop1);
    }
}
