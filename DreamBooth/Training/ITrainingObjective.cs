using static TorchSharp.torch;
using TorchSharp.Modules;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>One micro-batch: the optimizer step it belongs to (0-based), its position in the accumulation, and the item indices.</summary>
public sealed record Batch(long Step, int MicroStep, int Epoch, IReadOnlyList<int> Items);

/// <summary>Parameters that share a peak learning rate (UNet adapters, text-encoder adapters, LoRA+'s B matrices...).</summary>
public sealed record TrainableGroup(string Name, IReadOnlyList<(string Name, Parameter Parameter)> Parameters, double LearningRate);

/// <summary>
/// What the trainer minimizes, over the parameters of an <see cref="ITrainingTarget"/>. The SD noise-prediction
/// objective (cached latents and text embeddings, prior preservation) implements this; tests use small toy objectives.
/// </summary>
public interface ITrainingObjective
{
    /// <summary>The scalar loss of one micro-batch, with its autograd graph. Draw all randomness from <paramref name="rng"/>.</summary>
    Tensor Loss(Batch batch, TrainingRng rng);

    /// <summary>Called once before the first step of a run (after a resume's checkpoint is loaded), with the number of
    /// samples the steps still to come will draw: a chance to fill caches ahead of the loop.</summary>
    void Prepare(long samplesAhead, Action<string> info, CancellationToken cancellationToken) { }
}

/// <summary>Renders validation images at a step; the SD implementation samples the validation prompts with the current adapter.</summary>
public interface IValidationSampler
{
    void Validate(long step, string outputDirectory, CancellationToken cancellationToken);
}
