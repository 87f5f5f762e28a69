namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>The cells of the 3x3 position grid, row by row; phrases in <see cref="ToyGrammar.PositionPhrase"/>.</summary>
public enum ToyPosition { TopLeft, Top, TopRight, Left, Center, Right, BottomLeft, Bottom, BottomRight }
