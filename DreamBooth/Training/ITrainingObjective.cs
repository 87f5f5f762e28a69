using static TorchSharp.torch;
using TorchSharp.Modules;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>One micro-batch: the optimizer step it belongs to (0-based), its position in the accumulation, and the item indices.</summary>
public sealed record Batch(long Step, int MicroStep, int Epoch, IReadOnlyList<int> Items);

/// <summary>Parameters that share a peak learning rate (UNet adapters, text-encoder adapters, LoRA+'s B matrices...).</summary>
public sealed record TrainableGroup(string Name, IReadOnlyList<(string Name, Parameter Parameter)> Parameters, double LearningRate);

/// <summary>
/// What the trainer optimizes. The SD noise-prediction objective (UNet with adapters, cached latents and text
/// embeddings, prior preservation) implements this; tests use small toy objectives.
/// </summary>
public interface ITrainingObjective
{
    /// <summary>Trainable parameters by group; parameter names are unique across groups (they name checkpoint tensors).</summary>
    IReadOnlyList<TrainableGroup> ParameterGroups { get; }

    IEnumerable<Parameter> TrainableParameters => ParameterGroups.SelectMany(g => g.Parameters.Select(p => p.Parameter));

    /// <summary>The scalar loss of one micro-batch, with its autograd graph. Draw all randomness from <paramref name="rng"/>.</summary>
    Tensor Loss(Batch batch, TrainingRng rng);

    /// <summary>Called after every optimizer step with the number of steps taken, and on resume with the restored count (SingLoRA's ramp t).</summary>
    void OnOptimizerStep(long stepsTaken);

    /// <summary>Writes the finished adapter into the run folder (adapter.safetensors and adapter.kohya.safetensors).</summary>
    void WriteFinal(string runDirectory, long stepsTaken);
}

/// <summary>Renders validation images at a step; the SD implementation samples the validation prompts with the current adapter.</summary>
public interface IValidationSampler
{
    void Validate(long step, string outputDirectory, CancellationToken cancellationToken);
}
