namespace DiffusionPeft.Experiments.Claims;

/// <summary>How one adapter is trained on a <see cref="LinearProblem"/>.</summary>
public sealed record TrainSettings(OptimizerKind Optimizer, double LearningRate, int Steps, double Threshold,
                                   int Batch = 256, int EvalEvery = 10, double DivergeAt = 100, bool StopAtThreshold = false);
