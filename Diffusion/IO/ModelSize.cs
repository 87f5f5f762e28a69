namespace DiffusionPeft.Diffusion.IO;

/// <summary>
/// Guards model construction: a config describes the shapes of the model's parameters, and loading is strict (every
/// parameter must be in the weights with its shape, and nothing else), so a loadable model never has more parameters
/// than its weights hold. A config whose lower bound on parameters exceeds what the weights hold is refused before
/// the model is built, which keeps a hostile or mismatched config from allocating more than the weight files' size.
/// </summary>
public static class ModelSize
{
    /// <summary>Elements of every tensor of <paramref name="weights"/> (read from the headers, nothing loaded).</summary>
    public static double Elements(ITensorSource weights) =>
        weights.Keys.Sum(k => weights.ShapeOf(k).Aggregate(1.0, (a, d) => a * d));

    /// <param name="minimumParameters">A lower bound on the model's parameter count from its config.</param>
    public static void EnsureWeightsCanHold(double minimumParameters, ITensorSource weights, string configSource)
    {
        double held = Elements(weights);
        if (minimumParameters > held)
            throw new InvalidDataException(
                $"{configSource}: the config describes a model of at least {minimumParameters:N0} parameters, but {weights.Description} holds " +
                $"{held:N0} values: the config and the weights do not belong together.");
    }
}
