using System.Text;
using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Subjects;

/// <summary>
/// The DreamBooth evaluation protocol (prompts/dreambooth_*.txt: <c>{0}</c> the identifier, <c>{1}</c> the class
/// noun) in toy-world words: recontextualization (backgrounds, positions, sizes, a second object) and property
/// modification (a colour). Every template is a caption of the grammar once filled, so the scene judge can score
/// it; all the toy subjects are objects, so there are no live-subject prompts.
/// </summary>
public static class ToyDreamBoothPrompts
{
    public static IReadOnlyList<string> Templates { get; } =
    [
        "a {0} {1} on a blue striped background",
        "a {0} {1} on a plain yellow background",
        "a {0} {1} on a green checked background",
        "a {0} {1} on a purple gradient background",
        "a {0} {1} on a plain white background",
        "a {0} {1} on a black striped background",
        "a {0} {1} on a gray checked background",
        "a {0} {1} on a pink gradient background",
        "a {0} {1} at the top left",
        "a {0} {1} on the right",
        "a {0} {1} at the bottom",
        "a {0} {1} in the center",
        "a small {0} {1}",
        "a large {0} {1}",
        "a small {0} {1} at the top right on a plain orange background",
        "a large {0} {1} on the left on a blue checked background",
        "a {0} {1} on the left and a green circle on the right",
        "a {0} {1} at the top and a red square at the bottom",
        "a {0} {1} in the center and a small white star at the bottom right",
        "a red {0} {1}",
        "a blue {0} {1}",
        "a green {0} {1}",
        "a purple {0} {1}",
        "a yellow {0} {1}",
    ];

    public const string SubjectsFile = "dreambooth_subjects.csv", ObjectPromptsFile = "dreambooth_object_prompts.txt",
        LivePromptsFile = "dreambooth_live_prompts.txt";

    public static string Fill(string template, ToySubject subject) => template.Replace("{0}", subject.Identifier).Replace("{1}", subject.ClassNoun);

    /// <summary>"subject,class,kind,identifier" rows, as prompts/dreambooth_subjects.csv plus each subject's own identifier.</summary>
    public static string SubjectsCsv(IEnumerable<ToySubject> subjects)
    {
        var sb = new StringBuilder("subject,class,kind,identifier\n");
        foreach (var s in subjects) sb.Append($"{s.Name},{s.ClassNoun},object,{s.Identifier}\n");
        return sb.ToString();
    }

    public static string ObjectPromptsText() => string.Join('\n', Templates) + "\n";

    public static string LivePromptsText() => "# The toy world has no live subjects; its prompts are in " + ObjectPromptsFile + ".\n";

    /// <summary>Writes the three protocol files (the layout Metrics' DreamBoothProtocol.Load reads) into <paramref name="dir"/>.</summary>
    public static void Write(string dir, IEnumerable<ToySubject>? subjects = null)
    {
        Core.IO.AtomicFile.WriteAllText(Path.Combine(dir, SubjectsFile), SubjectsCsv(subjects ?? ToySubjects.All));
        Core.IO.AtomicFile.WriteAllText(Path.Combine(dir, ObjectPromptsFile), ObjectPromptsText());
        Core.IO.AtomicFile.WriteAllText(Path.Combine(dir, LivePromptsFile), LivePromptsText());
    }
}
