using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Rendering;

/// <summary>One solid-coloured layer of an object, painted over the layers before it; with
/// <paramref name="ClipToSilhouette"/> only inside the object's shape (stripes, dots, a half).</summary>
public sealed record ObjectLayer(BoxPath Path, Rgb Colour, bool ClipToSilhouette = false);
