namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>
/// An evaluation prompt from one scene: its full caption (<see cref="IsFull"/>) or a partial one (held-out scenes: a
/// training-style caption that differs from the full one; training scenes: the caption the UNet trained on).
/// </summary>
public sealed record EvaluationPrompt(string Text, bool IsFull, long SceneIndex);
