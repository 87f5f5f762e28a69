namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>Per attribute of one caption object: right, wrong, or null when the caption does not mention it.</summary>
public sealed record ObjectScore(bool? Colour, bool Shape, bool? Size, bool? Position)
{
    public IEnumerable<(string Attribute, bool Correct)> Results
    {
        get
        {
            if (Colour is { } c) yield return ("colour", c);
            yield return ("shape", Shape);
            if (Size is { } s) yield return ("size", s);
            if (Position is { } p) yield return ("position", p);
        }
    }
}
