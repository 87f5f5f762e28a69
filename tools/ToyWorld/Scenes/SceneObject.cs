using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>
/// An object of a scene. Its bounding box is centred at (<see cref="HiResCentreX"/>, <see cref="HiResCentreY"/>) and
/// its longer side is <see cref="HiResExtent"/>, all in supersampled pixels (1/4 px; <see cref="ToyGeometry"/>).
/// A base-world object is one solid <see cref="Colour"/>; a DreamBooth subject (<see cref="Subject"/> set) is drawn
/// with the subject's layers, and <see cref="Colour"/> is then the colour of its outermost layer.
/// </summary>
public sealed record SceneObject(ToyShape Shape, ToyColour Colour, ToySize Size, ToyPosition Position,
    int HiResCentreX, int HiResCentreY, int HiResExtent, ToySubject? Subject = null)
{
    public double CentreX => HiResCentreX / (double)ToyGeometry.Supersampling;
    public double CentreY => HiResCentreY / (double)ToyGeometry.Supersampling;
    public double Extent => HiResExtent / (double)ToyGeometry.Supersampling;

    /// <summary>The square of side <see cref="HiResExtent"/> around the centre that holds the object, in supersampled
    /// pixels, [left, right] x [top, bottom] (half a sample larger on each side when the extent is odd).</summary>
    public (int Left, int Top, int Right, int Bottom) HiResBox
    {
        get
        {
            int half = (HiResExtent + 1) / 2;
            return (HiResCentreX - half, HiResCentreY - half, HiResCentreX + half, HiResCentreY + half);
        }
    }
}
