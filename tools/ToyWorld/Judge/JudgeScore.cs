namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// An image scored against a caption: per attribute the caption mentions, whether the image shows it (null: not
/// mentioned). <see cref="Colour"/>, <see cref="Shape"/>, <see cref="Size"/> and <see cref="Position"/> are the main
/// (first named) object's; <see cref="Second"/> is set for two-object captions. <see cref="MainReading"/> is the object
/// found that the caption's main object was matched to (null: none), what the image shows in its place.
/// </summary>
public sealed record JudgeScore(ObjectScore Main, ObjectScore? Second, bool? BackgroundColour, bool? BackgroundTexture, int ObjectsFound,
                                ObjectReading? MainReading = null)
{
    public bool? Colour => Main.Colour;
    public bool Shape => Main.Shape;
    public bool? Size => Main.Size;
    public bool? Position => Main.Position;

    /// <summary>Both background attributes the caption mentions are right (null if it mentions none).</summary>
    public bool? Background => BackgroundColour is null && BackgroundTexture is null ? null : BackgroundColour != false && BackgroundTexture != false;

    /// <summary>Every graded attribute with its verdict.</summary>
    public IEnumerable<(JudgeAttribute Attribute, bool Correct)> Results
    {
        get
        {
            var all = new (JudgeAttribute, bool?)[]
            {
                (JudgeAttribute.Colour, Main.Colour), (JudgeAttribute.Shape, Main.Shape), (JudgeAttribute.Size, Main.Size),
                (JudgeAttribute.Position, Main.Position), (JudgeAttribute.BackgroundColour, BackgroundColour),
                (JudgeAttribute.BackgroundTexture, BackgroundTexture), (JudgeAttribute.SecondColour, Second?.Colour),
                (JudgeAttribute.SecondShape, Second?.Shape), (JudgeAttribute.SecondSize, Second?.Size), (JudgeAttribute.SecondPosition, Second?.Position),
            };
            foreach (var (a, v) in all)
                if (v is { } correct) yield return (a, correct);
        }
    }

    public bool AllCorrect => Results.All(r => r.Correct);
}
