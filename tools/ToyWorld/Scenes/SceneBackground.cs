using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Scenes;

/// <summary>
/// A background: its texture, named colour and layout. Gradients run linearly along <see cref="Axis"/> from the named
/// colour (at the top/left, or the bottom/right if <see cref="Reversed"/>) to its companion; stripes are
/// <see cref="StripeWidth"/> px wide across <see cref="Axis"/>, the named colour first at offset <see cref="PhaseX"/>
/// (<see cref="PhaseY"/> for Y); checks have cells of <see cref="CheckSize"/> px shifted by (PhaseX, PhaseY).
/// </summary>
public sealed record SceneBackground(BackgroundTexture Texture, ToyColour Colour, PatternAxis Axis = PatternAxis.Y,
    bool Reversed = false, int PhaseX = 0, int PhaseY = 0)
{
    public const int StripeWidth = 4;
    public const int CheckSize = 8;
}
