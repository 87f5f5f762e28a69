namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>What a <see cref="JudgeScore"/> grades: the main object's attributes, the background's, the second object's.</summary>
public enum JudgeAttribute
{
    Colour, Shape, Size, Position, BackgroundColour, BackgroundTexture, SecondColour, SecondShape, SecondSize, SecondPosition,
}
