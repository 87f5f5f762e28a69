using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// An object the judge found: its named colour (nearest to <see cref="MeasuredColour"/>, the median of its core
/// pixels), shape (best template IoU, <see cref="ShapeScores"/> per shape in enum order), size and position from its
/// soft bounding box (centre and longer side in pixels), and its area in mask pixels.
/// </summary>
public sealed record ObjectReading(ToyColour Colour, ToyShape Shape, ToySize Size, ToyPosition Position, Rgb MeasuredColour,
    double CentreX, double CentreY, double Extent, int Area, IReadOnlyList<double> ShapeScores)
{
    public double ShapeScore => ShapeScores[(int)Shape];
}
