namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>The image axis along which a gradient or stripes change colour (Y: a top-to-bottom gradient, horizontal stripes).</summary>
public enum PatternAxis { X, Y }
