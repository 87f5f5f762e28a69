using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Rendering;

namespace DiffusionPeft.ToyWorld.Subjects;

/// <summary>
/// A DreamBooth subject: a compound, multi-coloured object that the base world never draws (base objects are one
/// solid colour). Its silhouette is that of its class shape, named by a grammar word (<see cref="ClassNoun"/>);
/// <see cref="Identifier"/> is a rare word no base caption contains. <see cref="BaseColour"/> is the colour of its
/// first (outermost) layer.
/// </summary>
public sealed record ToySubject(string Name, string Identifier, ToyShape Class, ToyColour BaseColour, string Description,
    IReadOnlyList<ObjectLayer> Layers)
{
    public string ClassNoun => ToyGrammar.Word(Class);

    /// <summary>The distinct colours of its layers (a background must keep away from all of them).</summary>
    public IReadOnlyList<Rgb> Colours => Layers.Select(l => l.Colour).Distinct().ToArray();

    /// <summary>"a sks star": the instance prompt of DreamBooth training.</summary>
    public string InstancePrompt => $"a {Identifier} {ClassNoun}";
}
