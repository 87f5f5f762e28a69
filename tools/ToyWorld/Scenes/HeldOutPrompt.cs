namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>An evaluation prompt from a held-out scene: its full caption or a partial one.</summary>
public sealed record HeldOutPrompt(string Text, bool IsFull, long SceneIndex);
