namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>The object shapes, all drawn upright; their outlines are in <see cref="Rendering.ShapeOutlines"/>.</summary>
public enum ToyShape { Circle, Square, Triangle, Star, Ring, Cross, Heart, Diamond }
