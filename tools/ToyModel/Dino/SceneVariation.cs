using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;

namespace DiffusionPeft.ToyModel.Dino;

/// <summary>
/// Another view of a scene's objects, made in the world rather than in pixels: a new background (any texture, a
/// colour every object stands out on), and the objects moved to other cells and, for a lone object, resized. Two
/// views of one scene then share only the objects' looks (shape, colours, pattern), which is what the toy DINO should
/// encode. A background the objects do not stand out on (a compound object put into a scene) is always replaced.
/// </summary>
public static class SceneVariation
{
    public const double KeepBackground = 0.2, MoveObjects = 0.75, ResizeLoneObject = 0.5;

    public static ToyScene Vary(ToyScene scene, ref ToyRandom rng)
    {
        var background = scene.Background;
        bool fits = scene.Objects.All(o => StandsOut(o, background.Colour));
        if (!fits || !rng.Chance(KeepBackground))
        {
            var colours = ToyPalette.All.Where(bg => scene.Objects.All(o => StandsOut(o, bg))).ToArray();
            if (colours.Length > 0) background = SceneSampler.SampleBackground(ref rng, null, colours);
        }
        var main = scene.Main;
        var second = scene.Second;
        if (rng.Chance(MoveObjects))
        {
            if (second is null)
                main = Place(main, rng.Chance(ResizeLoneObject) ? (ToySize)rng.NextInt(3) : main.Size, ref rng);
            else
                for (int attempt = 0; attempt < 20; attempt++)
                {
                    var a = Place(main, main.Size, ref rng);
                    var b = Place(second, second.Size, ref rng);
                    if (a.Position == b.Position || !SceneSampler.Apart(a, b)) continue;
                    (main, second) = (a, b);
                    break;
                }
        }
        return new ToyScene(background, main, second);
    }

    private static bool StandsOut(SceneObject o, ToyColour background) =>
        o.Subject is { } s ? s.Colours.All(c => ToyPalette.StandsOut(c, background)) : ToyPalette.ObjectColoursOn(background).Contains(o.Colour);

    /// <summary>The object in a uniform cell at <paramref name="size"/>, with the world's jitter of centre and extent.</summary>
    private static SceneObject Place(SceneObject o, ToySize size, ref ToyRandom rng)
    {
        const int s = ToyGeometry.Supersampling;
        var position = (ToyPosition)rng.NextInt(9);
        int cx = ToyGeometry.GridCentres[ToyGeometry.Column(position)] * s + rng.NextInt(-ToyGeometry.MaxCentreJitter * s, ToyGeometry.MaxCentreJitter * s);
        int cy = ToyGeometry.GridCentres[ToyGeometry.Row(position)] * s + rng.NextInt(-ToyGeometry.MaxCentreJitter * s, ToyGeometry.MaxCentreJitter * s);
        int extent = ToyGeometry.NominalExtent(size) * s + rng.NextInt(-ToyGeometry.MaxExtentJitter * s, ToyGeometry.MaxExtentJitter * s);
        return o with { Size = size, Position = position, HiResCentreX = cx, HiResCentreY = cy, HiResExtent = extent };
    }
}
