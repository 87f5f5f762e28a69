using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>The background the judge read: texture and named colour, with the fitted model behind them.</summary>
public sealed record BackgroundReading(BackgroundTexture Texture, ToyColour Colour, BackgroundModel Model);
