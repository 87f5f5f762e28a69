namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>Background families: one colour, or the colour and its companion (<see cref="ToyPalette.Companion"/>)
/// as a linear gradient, stripes 4 px wide, or checks of 8 px cells.</summary>
public enum BackgroundTexture { Plain, Gradient, Striped, Checked }
