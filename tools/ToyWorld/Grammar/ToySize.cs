namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>Object sizes: the longer side of the object's bounding box, see <see cref="ToyGeometry"/>.</summary>
public enum ToySize { Small, Medium, Large }
