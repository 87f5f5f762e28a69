namespace DiffusionPeft.Experiments.Claims;

/// <summary>One experiment's part of results.md / results.json, and its wall time.</summary>
public sealed record ExperimentSection(string Key, string Title, string Markdown, object Json, double WallSeconds);
