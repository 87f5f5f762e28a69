using DiffusionPeft.Diffusion;
using DiffusionPeft.DreamBooth.Checkpoints;

namespace DiffusionPeft.DreamBooth.Config;

/// <summary>
/// Resolves a run's `--dtype auto` before anything is recorded: config.yaml and every checkpoint then hold the dtype
/// the run trained in (bf16 or fp32), so `--config` and `--resume` reproduce it on any machine, whatever auto would
/// pick there. A resume with auto takes the checkpoint's dtype; an explicit one that differs is refused as a changed
/// training setting.
/// </summary>
public static class TrainDType
{
    public static TrainConfig Resolve(TrainConfig config, Action<string>? warn = null)
    {
        var device = TorchOptions.ParseDevice(config.Device, requireAvailable: false);
        if (!TorchOptions.IsAuto(config.DType))
        {
            TorchOptions.ResolveDType(config.DType, device, warn);   // only warns (bf16 on a CPU without bf16 instructions)
            return config;
        }
        // Full fine-tuning trains the weights themselves, in fp32 unless asked for bf16 (mixed precision: bf16 compute on fp32
        // master weights), which auto does not pick: the numbers of a run should not change with the machine it starts on.
        var dtype = CheckpointDType(config) ?? (config.Mode == TrainingMode.Full ? "fp32" : TorchOptions.Name(TorchOptions.ResolveDType(config.DType, device)));
        return config with { DType = dtype };
    }

    /// <summary>The dtype recorded in the checkpoint a resume will start from; null when there is none.</summary>
    public static string? CheckpointDType(TrainConfig config) => DTypeOf(ResumeCheckpoint.Settings(config));

    /// <summary>The dtype a checkpoint's settings record (<see cref="ResumeCheckpoint.Settings"/>); null for none or auto.</summary>
    public static string? DTypeOf(TrainConfig? saved) => saved?.DType is { } dtype && !TorchOptions.IsAuto(dtype) ? dtype : null;
}
