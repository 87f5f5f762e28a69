using DiffusionPeft.ToyWorld.Files;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.Experiments.DreamBoothTable;

/// <summary>The subjects' folders as a user's would be (instances/, heldout/, protocol/), written once under the table's folder.</summary>
public sealed record TableData(string Root, string Model)
{
    public string Protocol => Path.Combine(Root, "protocol");
    public string HeldOut => Path.Combine(Root, "heldout");
    public string EmbeddingCache => Path.Combine(Root, ".embcache");
    public string Instances(ToySubject subject) => Path.Combine(Root, "instances", subject.Name);

    public static TableData Prepare(string root, string model)
    {
        var data = new TableData(root, model);
        if (!File.Exists(Path.Combine(root, "done"))) 
        {
            ToyWorldFiles.WriteSubjects(root, 0);
            File.WriteAllText(Path.Combine(root, "done"), "");
        }
        return data;
    }
}
