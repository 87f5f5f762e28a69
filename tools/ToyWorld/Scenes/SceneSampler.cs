using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>
/// Draws scenes. Backgrounds: texture and colour uniform. Objects: shape, size and position uniform, colour uniform
/// among those that stand out on the background (<see cref="ToyPalette.StandsOut"/>). A second object (probability
/// <see cref="SecondObjectProbability"/>) has another colour and another cell and keeps a gap of
/// <see cref="MinGap"/> px from the first; if 30 draws find no such place the scene keeps one object.
/// The main object's combination with the background decides the split (<see cref="SplitOf"/>): held-out scenes
/// show combinations no training scene shows.
/// </summary>
public static class SceneSampler
{
    public const double SecondObjectProbability = 0.35;
    /// <summary>One combination (main colour, shape, size, position, background colour, texture) in this many is held out.</summary>
    public const int HeldOutOneIn = 16;
    public const int MinGap = 3;

    public static ToyScene Sample(long worldSeed, long index, SceneSplit split)
    {
        var rng = ToyRandom.Keyed((ulong)worldSeed, RandomStreams.Scene, (ulong)index);
        for (int attempt = 0; ; attempt++)
        {
            var background = SampleBackground(ref rng);
            var main = SampleObject(ref rng, background.Colour, ToyPalette.ObjectColoursOn(background.Colour));
            if (SplitOf(worldSeed, main, background) != split)
            {
                if (attempt > 10_000) throw new InvalidOperationException($"no {split} scene found for world seed {worldSeed}, index {index}");
                continue;
            }
            var second = rng.Chance(SecondObjectProbability) ? SampleSecond(ref rng, background, main) : null;
            return new ToyScene(background, main, second);
        }
    }

    /// <summary>
    /// A plain scene of the split: one large object (shape, colour, position as <see cref="Sample"/> draws them) alone on
    /// a plain background. Little varies but what a caption names, so the shape word is learnable here when it is not in
    /// the whole world (toy-shape-isolation); the split is kept, so held-out combinations stay unseen. Other
    /// <paramref name="sizes"/> (drawn uniformly) give the same kind of scene with smaller objects, other
    /// <paramref name="textures"/> (drawn uniformly) the same object on other backgrounds; with one texture nothing is drawn
    /// for it, so plain scenes are the same whether <paramref name="textures"/> is left out or [Plain].
    /// </summary>
    public static ToyScene SamplePlain(long worldSeed, long index, SceneSplit split, IReadOnlyList<ToySize>? sizes = null,
        IReadOnlyList<BackgroundTexture>? textures = null)
    {
        sizes ??= [ToySize.Large];
        textures ??= [BackgroundTexture.Plain];
        if (textures.Count == 0) throw new ArgumentException("a plain scene needs at least one background texture to draw from", nameof(textures));
        var rng = ToyRandom.Keyed((ulong)worldSeed, RandomStreams.PlainScene, (ulong)index);
        for (int attempt = 0; ; attempt++)
        {
            var background = SampleBackground(ref rng, textures.Count == 1 ? textures[0] : rng.Pick(textures));
            var main = SampleObject(ref rng, background.Colour, ToyPalette.ObjectColoursOn(background.Colour), sizes: sizes);
            if (SplitOf(worldSeed, main, background) == split) return new ToyScene(background, main);
            if (attempt > 10_000) throw new InvalidOperationException($"no plain {split} scene found for world seed {worldSeed}, index {index}");
        }
    }

    /// <summary>Which split the scene's main combination belongs to (a keyed hash of the combination and the world seed).</summary>
    public static SceneSplit SplitOf(long worldSeed, SceneObject main, SceneBackground background)
    {
        var h = ToyRandom.Keyed((ulong)worldSeed, RandomStreams.Combination, (ulong)main.Colour, (ulong)main.Shape, (ulong)main.Size,
            (ulong)main.Position, (ulong)background.Colour, (ulong)background.Texture).NextUInt64();
        return h % HeldOutOneIn == 0 ? SceneSplit.HeldOut : SceneSplit.Train;
    }

    /// <summary>A background of the given texture (else uniform), a colour from <paramref name="colours"/> (else uniform) and a uniform layout.</summary>
    public static SceneBackground SampleBackground(ref ToyRandom rng, BackgroundTexture? texture = null, IReadOnlyList<ToyColour>? colours = null)
    {
        var t = texture ?? (BackgroundTexture)rng.NextInt(4);
        var colour = colours is null ? (ToyColour)rng.NextInt(ToyPalette.All.Count) : rng.Pick(colours);
        var axis = rng.Chance(0.5) ? PatternAxis.X : PatternAxis.Y;
        return t switch
        {
            BackgroundTexture.Plain => new SceneBackground(t, colour),
            BackgroundTexture.Gradient => new SceneBackground(t, colour, axis, Reversed: rng.Chance(0.5)),
            BackgroundTexture.Striped => axis == PatternAxis.X
                ? new SceneBackground(t, colour, axis, PhaseX: rng.NextInt(2 * SceneBackground.StripeWidth))
                : new SceneBackground(t, colour, axis, PhaseY: rng.NextInt(2 * SceneBackground.StripeWidth)),
            _ => new SceneBackground(t, colour, PhaseX: rng.NextInt(2 * SceneBackground.CheckSize), PhaseY: rng.NextInt(SceneBackground.CheckSize)),
        };
    }

    /// <summary>An object with a uniform shape (or the subject's), size and position, and a colour from <paramref name="colours"/>.</summary>
    public static SceneObject SampleObject(ref ToyRandom rng, ToyColour background, IReadOnlyList<ToyColour> colours,
        ToySubject? subject = null, IReadOnlyList<ToySize>? sizes = null)
    {
        var shape = subject?.Class ?? (ToyShape)rng.NextInt(Enum.GetValues<ToyShape>().Length);
        var colour = subject?.BaseColour ?? rng.Pick(colours);
        var size = sizes is null ? (ToySize)rng.NextInt(3) : rng.Pick(sizes);
        var position = (ToyPosition)rng.NextInt(9);
        const int s = ToyGeometry.Supersampling;
        int cx = ToyGeometry.GridCentres[ToyGeometry.Column(position)] * s + rng.NextInt(-ToyGeometry.MaxCentreJitter * s, ToyGeometry.MaxCentreJitter * s);
        int cy = ToyGeometry.GridCentres[ToyGeometry.Row(position)] * s + rng.NextInt(-ToyGeometry.MaxCentreJitter * s, ToyGeometry.MaxCentreJitter * s);
        int extent = ToyGeometry.NominalExtent(size) * s + rng.NextInt(-ToyGeometry.MaxExtentJitter * s, ToyGeometry.MaxExtentJitter * s);
        return new SceneObject(shape, colour, size, position, cx, cy, extent, subject);
    }

    private static SceneObject? SampleSecond(ref ToyRandom rng, SceneBackground background, SceneObject main)
    {
        var colours = ToyPalette.ObjectColoursOn(background.Colour).Where(c => c != main.Colour).ToArray();
        for (int attempt = 0; attempt < 30; attempt++)
        {
            var second = SampleObject(ref rng, background.Colour, colours);
            if (second.Position != main.Position && Apart(main, second)) return second;
        }
        return null;
    }

    /// <summary>Whether the objects' boxes (squares of their extent) are at least <see cref="MinGap"/> px apart along x or y.</summary>
    public static bool Apart(SceneObject a, SceneObject b)
    {
        var (al, at, ar, ab) = a.HiResBox;
        var (bl, bt, br, bb) = b.HiResBox;
        int gap = MinGap * ToyGeometry.Supersampling;
        return bl - ar >= gap || al - br >= gap || bt - ab >= gap || at - bb >= gap;
    }
}
