namespace DiffusionPeft.Experiments.Claims;

/// <summary>Where a planted ΔW* = U·S·Vᵀ takes its input directions V.</summary>
public enum PlantedSpan
{
    /// <summary>The leading directions of what each layer sees on the instance prompt: a change the data can reveal.</summary>
    Inputs,
    /// <summary>Random directions: in a layer whose inputs span few directions (cross-attention keys and values see one prompt's tokens) mostly invisible.</summary>
    Random,
}
