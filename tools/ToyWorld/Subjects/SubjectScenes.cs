using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.ToyWorld.Subjects;

/// <summary>
/// Scenes of a DreamBooth subject alone, a pure function of (world seed, subject, kind, i). Instance images (the
/// "photos" a user would bring) show the subject medium or large, cycling through the four background textures;
/// held-out images use any size, texture and position. Backgrounds keep <see cref="ToyPalette.MinObjectBackgroundDistance"/>
/// from every colour of the subject.
/// </summary>
public static class SubjectScenes
{
    public static ToyScene Instance(long worldSeed, ToySubject subject, int i) => Sample(worldSeed, subject, i, heldOut: false);

    public static ToyScene HeldOut(long worldSeed, ToySubject subject, int i) => Sample(worldSeed, subject, i, heldOut: true);

    /// <summary>The background colours every colour of <paramref name="subject"/> stands out on.</summary>
    public static IReadOnlyList<ToyColour> BackgroundColours(ToySubject subject) =>
        ToyPalette.All.Where(bg => subject.Colours.All(c => ToyPalette.StandsOut(c, bg))).ToArray();

    private static ToyScene Sample(long worldSeed, ToySubject subject, int i, bool heldOut)
    {
        World.CheckSeed(worldSeed);
        ArgumentOutOfRangeException.ThrowIfNegative(i);
        int subjectIndex = ToySubjects.All.ToList().FindIndex(s => s.Name == subject.Name);
        if (subjectIndex < 0) throw new ArgumentException($"'{subject.Name}' is not one of ToySubjects.All", nameof(subject));
        var rng = ToyRandom.Keyed((ulong)worldSeed, RandomStreams.SubjectScene, (ulong)subjectIndex, heldOut ? 1UL : 0UL, (ulong)i);
        var background = SceneSampler.SampleBackground(ref rng, heldOut ? null : (BackgroundTexture)(i % 4), BackgroundColours(subject));
        var obj = SceneSampler.SampleObject(ref rng, background.Colour, [], subject, heldOut ? null : [ToySize.Medium, ToySize.Large]);
        return new ToyScene(background, obj);
    }
}
