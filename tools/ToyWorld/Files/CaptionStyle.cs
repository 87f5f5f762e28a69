namespace DiffusionPeft.ToyWorld.Files;

/// <summary>Which caption a dataset file gets: the scene's full caption, or a partial training caption (<see cref="World.TrainingCaption"/>).</summary>
public enum CaptionStyle { Full, Training }
