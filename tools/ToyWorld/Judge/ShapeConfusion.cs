using System.Text;
using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// What the judge read where a caption asked for each shape: counts of (the caption's main shape, the shape of the
/// object matched to it, or none found). Its diagonal is the shape accuracy; its rows say which shape is drawn instead.
/// </summary>
public sealed class ShapeConfusion
{
    private static readonly ToyShape[] Shapes = Enum.GetValues<ToyShape>();
    private readonly int[,] _counts = new int[Shapes.Length, Shapes.Length + 1];   // the last column: no object found

    public void Add(ToyShape asked, JudgeScore score) => _counts[(int)asked, score.MainReading is { } o ? (int)o.Shape : Shapes.Length]++;

    /// <summary>How often <paramref name="asked"/> was read as <paramref name="read"/> (null: no object found).</summary>
    public int Count(ToyShape asked, ToyShape? read) => _counts[(int)asked, read is { } r ? (int)r : Shapes.Length];

    public int Asked(ToyShape asked) => Enumerable.Range(0, Shapes.Length + 1).Sum(j => _counts[(int)asked, j]);

    /// <summary>How often each shape was read, over every caption.</summary>
    public int Read(ToyShape? read) => Shapes.Sum(a => Count(a, read));

    /// <summary>A Markdown table: one row per asked shape (its count and share right), one column per shape read, then none.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder("| asked \\ read | " + string.Join(" | ", Shapes.Select(ToyGrammar.Word)) + " | none | images | right |\n|---|" +
                                   string.Concat(Enumerable.Repeat("---:|", Shapes.Length + 3)) + "\n");
        foreach (var a in Shapes)
        {
            int n = Asked(a);
            sb.Append($"| {ToyGrammar.Word(a)} | " + string.Join(" | ", Shapes.Select(r => Cell(a, r))) + $" | {Cell(a, null)} | {n} | " +
                      (n == 0 ? "–" : $"{100.0 * Count(a, a) / n:F1}%") + " |\n");
        }
        sb.Append("| all | " + string.Join(" | ", Shapes.Select(r => Read(r).ToString())) + $" | {Read(null)} | {Shapes.Sum(Asked)} | |\n");
        return sb.ToString();

        string Cell(ToyShape a, ToyShape? r) => r == a ? $"**{Count(a, r)}**" : Count(a, r).ToString();
    }
}
