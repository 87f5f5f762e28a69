using System.Text;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>Accuracy per attribute over a set of scores (an attribute counts only where a caption mentioned it).</summary>
public sealed class JudgeAccuracy
{
    private readonly int[] _right = new int[Enum.GetValues<JudgeAttribute>().Length];
    private readonly int[] _total = new int[Enum.GetValues<JudgeAttribute>().Length];

    public int Scores { get; private set; }
    public int AllCorrect { get; private set; }

    public void Add(JudgeScore score)
    {
        Scores++;
        if (score.AllCorrect) AllCorrect++;
        foreach (var (a, correct) in score.Results)
        {
            _total[(int)a]++;
            if (correct) _right[(int)a]++;
        }
    }

    public static JudgeAccuracy Of(IEnumerable<JudgeScore> scores)
    {
        var acc = new JudgeAccuracy();
        foreach (var s in scores) acc.Add(s);
        return acc;
    }

    /// <summary>
    /// The judge's reading of every PNG under <paramref name="folder"/> (contact sheets aside) against its prompt, as
    /// <paramref name="promptOf"/> reads it from the image's metadata (dpeft's generated images: FidelityEvaluation.PromptOf).
    /// </summary>
    public static JudgeAccuracy OfGeneratedImages(string folder, Func<string, string?> promptOf)
    {
        var accuracy = new JudgeAccuracy();
        foreach (var png in Directory.EnumerateFiles(folder, "*.png", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            if (DiffusionPeft.Core.Imaging.ImageGrid.IsContactSheet(png)) continue;
            if (promptOf(png) is not { Length: > 0 } prompt) continue;
            accuracy.Add(SceneJudge.Score(DiffusionPeft.Core.Imaging.ImageLoader.Load(png), prompt));
        }
        return accuracy;
    }

    /// <summary>How many scores graded <paramref name="attribute"/>.</summary>
    public int Count(JudgeAttribute attribute) => _total[(int)attribute];

    /// <summary>How many scores graded <paramref name="attribute"/> right.</summary>
    public int Correct(JudgeAttribute attribute) => _right[(int)attribute];

    /// <summary>The share graded right, or null if none graded it.</summary>
    public double? Accuracy(JudgeAttribute attribute) => _total[(int)attribute] == 0 ? null : _right[(int)attribute] / (double)_total[(int)attribute];

    /// <summary>One line per graded attribute: "Colour 98.4% (500)", then the share of scores right on everything.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var a in Enum.GetValues<JudgeAttribute>())
            if (Accuracy(a) is { } v) sb.Append($"{a} {100 * v:F1}% ({Count(a)})\n");
        if (Scores > 0) sb.Append($"all correct {100.0 * AllCorrect / Scores:F1}% ({Scores})\n");
        return sb.ToString();
    }
}
