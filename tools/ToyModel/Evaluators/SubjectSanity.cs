namespace DiffusionPeft.ToyModel.Evaluators;

/// <summary>
/// An image metric (DINO or CLIP-I) on the toy subjects' held-out views. <see cref="Retrieval"/>: each view ranks
/// the other views, same-subject ones right. <see cref="Classification"/>: each view goes to the subject whose
/// instance images it is most similar to on average (the DreamBooth use: generated vs real). <see cref="BeatsPlainClass"/>:
/// the share of views more similar to their subject's instances than the same scene with the subject replaced by a
/// plain object of its class and base colour (the failure DreamBooth's DINO is meant to catch; chance 0.5).
/// <see cref="SameSubject"/> / <see cref="OtherSubject"/>: mean cosine between views of one subject / of two.
/// </summary>
public sealed record SubjectSanity(string Metric, RankStats Retrieval, double Classification, double ChanceClassification, double BeatsPlainClass,
                                  double SameSubject, double OtherSubject);
