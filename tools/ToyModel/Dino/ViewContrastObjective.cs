using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Scenes;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel.Dino;

/// <summary>
/// SimCLR's NT-Xent loss (Chen et al. 2020) over two views of each training scene of the batch: each view must pick
/// the other view of its scene among the 2B − 1 others, at temperature τ. A view is the scene re-rendered by
/// <see cref="SceneVariation"/> (keyed by seed, step, micro-batch, item and view, so a resumed run renders the same)
/// and then augmented in pixels by <see cref="ViewAugmentation"/>. A share of the scenes (<paramref name="compoundShare"/>)
/// have their main object replaced by a <see cref="CompoundObjects"/> one, the same in both views.
/// </summary>
public sealed class ViewContrastObjective(ToyDinoNetwork network, World world, ViewAugmentation augmentation, double temperature, double compoundShare,
                                         long seed) : ITrainingObjective
{
    /// <summary>Separate the views' and the compounds' random streams from the world's own streams.</summary>
    private const ulong ViewStream = 0x64696e6f, CompoundStream = 0x636d7064;   // "dino", "cmpd"

    public Tensor Loss(Batch batch, TrainingRng rng)
    {
        using var scope = NewDisposeScope();
        var device = network.head2.weight!.device;
        int b = batch.Items.Count;
        var views = Render(batch, device);
        var z = network.call(augmentation.Apply(views, rng));
        var logits = z.matmul(z.t()) / temperature;
        logits = logits.masked_fill(eye(2 * b, dtype: ScalarType.Bool, device: device), double.NegativeInfinity);
        var partner = cat([arange(b, 2 * b, dtype: ScalarType.Int64), arange(0, b, dtype: ScalarType.Int64)]).to(device);
        return nn.functional.cross_entropy(logits, partner).MoveToOuterDisposeScope();
    }

    /// <summary>[2B, 3, 64, 64] in [-1, 1]: first view of every item, then the second view of every item.</summary>
    public Tensor Render(Batch batch, Device device)
    {
        int b = batch.Items.Count;
        const int pixels = 64 * 64 * 3;
        var bytes = new byte[2 * b * pixels];
        Parallel.For(0, 2 * b, k =>
        {
            int view = k / b, item = batch.Items[k % b];
            var rng = ToyRandom.Keyed((ulong)seed, ViewStream, (ulong)batch.Step, (ulong)batch.MicroStep, (ulong)item, (ulong)view);
            var scene = SceneVariation.Vary(Scene(item), ref rng);
            SceneRenderer.Render(scene).Pixels.CopyTo(bytes, k * pixels);
        });
        using var scope = NewDisposeScope();
        return ScenePixels.Unit(bytes, 2 * b, 64, 64).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>Training scene <paramref name="item"/>, its main object made a compound one for a share of the items.</summary>
    public ToyScene Scene(int item)
    {
        var scene = world.TrainScene(item);
        var rng = ToyRandom.Keyed((ulong)seed, CompoundStream, (ulong)item);
        if (!rng.Chance(compoundShare)) return scene;
        var compound = CompoundObjects.Random(scene.Main.Shape, ref rng);
        return scene with { Main = scene.Main with { Colour = compound.BaseColour, Subject = compound } };
    }
}
