namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>Training scenes (indices below <see cref="World.HeldOutStart"/>) or held-out scenes (from it on).</summary>
public enum SceneSplit { Train, HeldOut }
