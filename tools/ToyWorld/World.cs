using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Scenes;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.ToyWorld;

/// <summary>
/// The toy world of one seed. Scene <c>i</c> is a pure function of (seed, i): the same caption and the same pixels
/// on every machine. Indices below <see cref="HeldOutStart"/> are training scenes, the others held-out scenes, whose
/// main combinations (colour, shape, size, position, background colour and texture) no training scene shows.
/// </summary>
public sealed class World
{
    /// <summary>World seeds are 0 ..= MaxSeed (2^31 − 1); so are scene indices.</summary>
    public const long MaxSeed = int.MaxValue, MaxIndex = int.MaxValue;
    public const long HeldOutStart = 1L << 30;

    public long Seed { get; }

    public World(long seed) => Seed = CheckSeed(seed);

    public static long CheckSeed(long seed) =>
        seed is < 0 or > MaxSeed ? throw new ArgumentOutOfRangeException(nameof(seed), seed, $"a toy-world seed must be in 0..{MaxSeed}, got {seed}") : seed;

    /// <summary>The index of a split's first scene: 0 for training, <see cref="HeldOutStart"/> for held-out.</summary>
    public static long FirstIndex(SceneSplit split) => split == SceneSplit.Train ? 0 : HeldOutStart;

    /// <summary>How many scenes a split has (2^30 each).</summary>
    public static long SceneCount(SceneSplit split) => split == SceneSplit.Train ? HeldOutStart : MaxIndex - HeldOutStart + 1;

    public static SceneSplit SplitOf(long index) => CheckIndex(index) < HeldOutStart ? SceneSplit.Train : SceneSplit.HeldOut;

    public ToyScene Scene(long index) => SceneSampler.Sample(Seed, CheckIndex(index), SplitOf(index));

    /// <summary>Training scene <paramref name="i"/> (= <see cref="Scene"/>(i)).</summary>
    public ToyScene TrainScene(long i) => Scene(CheckSplitOffset(i, SceneCount(SceneSplit.Train)));

    /// <summary>Held-out scene <paramref name="i"/> (= <see cref="Scene"/>(HeldOutStart + i)).</summary>
    public ToyScene HeldOutScene(long i) => Scene(HeldOutStart + CheckSplitOffset(i, SceneCount(SceneSplit.HeldOut)));

    /// <summary>
    /// Plain scene <paramref name="index"/> (<see cref="SceneSampler.SamplePlain"/>): one object alone on a plain background,
    /// large unless other <paramref name="sizes"/> are given (on other <paramref name="textures"/> if given), split as
    /// <see cref="Scene"/>'s index.
    /// </summary>
    public ToyScene PlainScene(long index, IReadOnlyList<ToySize>? sizes = null, IReadOnlyList<BackgroundTexture>? textures = null) =>
        SceneSampler.SamplePlain(Seed, CheckIndex(index), SplitOf(index), sizes, textures);

    /// <summary>A partial training caption (<see cref="TrainingCaptions"/>) of plain scene <paramref name="index"/>, from a stream of its own.</summary>
    public ToyCaption PlainTrainingCaption(long index, IReadOnlyList<ToySize>? sizes = null, IReadOnlyList<BackgroundTexture>? textures = null)
    {
        var rng = ToyRandom.Keyed((ulong)Seed, RandomStreams.PlainTrainingCaption, (ulong)CheckIndex(index));
        return TrainingCaptions.Sample(PlainScene(index, sizes, textures), ref rng);
    }

    public RgbImage Render(long index) => SceneRenderer.Render(Scene(index));

    public ToyCaption FullCaption(long index) => Scene(index).FullCaption();

    /// <summary>A partial training caption of scene <paramref name="index"/>; each <paramref name="variant"/> (e.g. the epoch) draws anew.</summary>
    public ToyCaption TrainingCaption(long index, long variant = 0)
    {
        var rng = ToyRandom.Keyed((ulong)Seed, RandomStreams.TrainingCaption, (ulong)CheckIndex(index), (ulong)variant);
        return TrainingCaptions.Sample(Scene(index), ref rng);
    }

    /// <summary>Instance image <paramref name="i"/> of a DreamBooth subject (<see cref="SubjectScenes"/>).</summary>
    public ToyScene SubjectInstance(ToySubject subject, int i) => SubjectScenes.Instance(Seed, subject, i);

    /// <summary>Held-out image <paramref name="i"/> of a DreamBooth subject (<see cref="SubjectScenes"/>).</summary>
    public ToyScene SubjectHeldOut(ToySubject subject, int i) => SubjectScenes.HeldOut(Seed, subject, i);

    /// <summary>
    /// Evaluation prompts from held-out scenes <paramref name="first"/>..first + <paramref name="scenes"/>−1: per scene its
    /// full caption, then a partial one (a training-style caption that differs from the full one). Disjoint ranges are
    /// separate sets of the same kind: settings chosen on one (a validation set) are measured on another.
    /// </summary>
    public IReadOnlyList<EvaluationPrompt> HeldOutPrompts(int scenes, long first = 0)
    {
        CheckRange(scenes, first, SceneCount(SceneSplit.HeldOut));
        var prompts = new List<EvaluationPrompt>(2 * scenes);
        for (int i = 0; i < scenes; i++)
        {
            long index = HeldOutStart + first + i;
            var scene = Scene(index);
            var full = scene.FullCaption();
            var rng = ToyRandom.Keyed((ulong)Seed, RandomStreams.HeldOutCaption, (ulong)index);
            var partial = TrainingCaptions.Sample(scene, ref rng);
            for (int k = 0; k < 100 && partial with { Connector = BackgroundConnector.Comma } == full; k++) partial = TrainingCaptions.Sample(scene, ref rng);
            prompts.Add(new EvaluationPrompt(full.ToText(), true, index));
            prompts.Add(new EvaluationPrompt(partial.ToText(), false, index));
        }
        return prompts;
    }

    /// <summary>
    /// Evaluation prompts from training scenes <paramref name="first"/>..first + <paramref name="scenes"/>−1, the recipe's UNet data: per scene its full
    /// caption, then the caption its data file gives it (<see cref="TrainingCaption"/>, variant 0; it may be the full one).
    /// Beside <see cref="HeldOutPrompts"/>, what a model draws for scenes it trained on against combinations it never saw.
    /// </summary>
    public IReadOnlyList<EvaluationPrompt> TrainingPrompts(int scenes, long first = 0)
    {
        CheckRange(scenes, first, SceneCount(SceneSplit.Train));
        var prompts = new List<EvaluationPrompt>(2 * scenes);
        for (long i = first; i < first + scenes; i++)
        {
            prompts.Add(new EvaluationPrompt(FullCaption(i).ToText(), true, i));
            prompts.Add(new EvaluationPrompt(TrainingCaption(i).ToText(), false, i));
        }
        return prompts;
    }

    private static void CheckRange(int scenes, long first, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(scenes);
        if (first < 0 || first > count - scenes)
            throw new ArgumentOutOfRangeException(nameof(first), first, $"the split has scenes 0..{count - 1}: {scenes} from scene {first} do not fit");
    }

    private static long CheckIndex(long index) =>
        index is < 0 or > MaxIndex ? throw new ArgumentOutOfRangeException(nameof(index), index, $"a toy-world scene index must be in 0..{MaxIndex}, got {index}") : index;

    private static long CheckSplitOffset(long i, long count) =>
        i < 0 || i >= count ? throw new ArgumentOutOfRangeException(nameof(i), i, $"the split has scenes 0..{count - 1}, got {i}") : i;
}
