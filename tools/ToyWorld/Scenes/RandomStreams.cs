namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>Keys that separate the world's random streams, so that e.g. a caption's randomness never shifts a scene's.</summary>
internal static class RandomStreams
{
    public const ulong Scene = 1, TrainingCaption = 2, Combination = 3, SubjectScene = 4, HeldOutCaption = 5, PlainScene = 6, PlainTrainingCaption = 7;
}
