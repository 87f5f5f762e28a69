namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>What the judge read in an image: the background and the objects, largest first.</summary>
public sealed record SceneReading(BackgroundReading Background, IReadOnlyList<ObjectReading> Objects);
