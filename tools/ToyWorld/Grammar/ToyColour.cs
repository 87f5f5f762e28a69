namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>The named colours of the world (objects and backgrounds); their RGB values are in <see cref="ToyPalette"/>.</summary>
public enum ToyColour { Red, Orange, Yellow, Green, Blue, Purple, Pink, White, Gray, Black }
