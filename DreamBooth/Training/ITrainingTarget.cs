namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// What a run trains: the injected adapters (<c>AdapterSession</c>), or every weight of a model in full fine-tuning.
/// It names the trainable tensors by parameter group (their names are the checkpoint's tensor names), hears about
/// every optimizer step (SingLoRA's ramp, SDS-LoRA's bases) and writes the finished result into the run folder.
/// </summary>
public interface ITrainingTarget
{
    /// <summary>Trainable parameters by group; parameter names are unique across groups (they name checkpoint tensors).</summary>
    IReadOnlyList<TrainableGroup> ParameterGroups { get; }

    IEnumerable<TorchSharp.Modules.Parameter> TrainableParameters => ParameterGroups.SelectMany(g => g.Parameters.Select(p => p.Parameter));

    /// <summary>Called after each micro-batch's backward pass (before clipping and the optimizer step).</summary>
    void AfterBackward() { }

    /// <summary>Called after every optimizer step with the number of steps taken, and on resume with the restored count.</summary>
    void OnOptimizerStep(long stepsTaken);

    /// <summary>Called when the trainer has written other values into the trainable parameters (the weight average
    /// swapped in or out), for a target that keeps copies of them (mixed precision's bf16 model weights).</summary>
    void ParametersReplaced() { }

    /// <summary>Writes the finished result into the run folder (for adapters: adapter.safetensors and adapter.kohya.safetensors).</summary>
    void WriteFinal(string runDirectory, long stepsTaken);
}
