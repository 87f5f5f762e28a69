using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Training;

namespace DiffusionPeft.DreamBooth.Checkpoints;

/// <summary>
/// The checkpoint a run's --resume starts from, found before anything is written: its config.yaml says how the run
/// trained (its dtype, its warm-up), and a resume the trainer would refuse is refused before the run folder's own
/// config.yaml is rewritten, so that file keeps describing the checkpoints beside it.
/// </summary>
public static class ResumeCheckpoint
{
    public static string CheckpointsFolder(TrainConfig config) => Path.Combine(Path.GetFullPath(config.Out), "checkpoints");

    /// <summary>The checkpoint folder --resume names; null without --resume, without a checkpoint yet, or with one the trainer will report.</summary>
    public static string? Find(TrainConfig config)
    {
        if (config.Resume is not { } resume || string.IsNullOrWhiteSpace(config.Out)) return null;
        var checkpoints = CheckpointsFolder(config);
        if (!Directory.Exists(checkpoints)) return null;
        var store = new CheckpointStore(checkpoints);
        try { return resume.Trim().Equals("latest", StringComparison.OrdinalIgnoreCase) ? store.Latest() : store.Resolve(resume); }
        catch (Exception e) when (e is InvalidCheckpointException or DirectoryNotFoundException) { return null; }   // the trainer reports it
    }

    /// <summary>The settings the checkpoint was written with (its config.yaml); null when there is no checkpoint or no readable file.</summary>
    public static TrainConfig? Settings(TrainConfig config)
    {
        var saved = Find(config) is { } folder ? Path.Combine(folder, TrainConfigYaml.ResolvedFileName) : null;
        if (saved is null || !File.Exists(saved)) return null;
        try { return TrainConfigYaml.Load(saved, validate: false); }
        catch (Exception e) when (e is TrainConfigException or IOException) { return null; }   // the trainer reports it
    }

    /// <summary>
    /// Refuses what the trainer would refuse once the model is loaded: training settings other than the checkpoint's, or
    /// a new run beside another run's checkpoints.
    /// </summary>
    public static void RefuseWhatTheTrainerWould(TrainConfig config)
    {
        var checkpoints = CheckpointsFolder(config);
        if (config.Resume is not null) RefuseOtherSettings(Find(config), new TrainConfigSettings(config));
        else if (Latest(checkpoints) is { } stale) throw new InvalidCheckpointException(CheckpointsAlready(checkpoints, stale));
    }

    /// <summary>The newest complete checkpoint in a checkpoints folder; null when there is none (or no folder).</summary>
    public static string? Latest(string checkpoints) => Directory.Exists(checkpoints) ? new CheckpointStore(checkpoints).Latest() : null;

    /// <summary>
    /// Refuses settings other than those <paramref name="checkpoint"/> was written with, naming them, as the trainer
    /// refuses them on a resume; <paramref name="advice"/> ends the message. Null: no checkpoint, nothing to refuse. A
    /// settings file that cannot be read is left to the trainer, which reports it if the checkpoint's hash differs.
    /// </summary>
    public static void RefuseOtherSettings(string? checkpoint, IRunSettings asked, string advice = "")
    {
        if (checkpoint is null || Path.Combine(checkpoint, asked.FileName) is var saved && !File.Exists(saved)) return;
        IReadOnlyList<string> differences;
        try { differences = asked.DifferencesFrom(saved); }
        catch (Exception e) when (e is TrainConfigException or System.Text.Json.JsonException or IOException) { return; }
        if (differences.Count > 0)
            throw new InvalidCheckpointException(OtherSettings(checkpoint, string.Join(", ", differences)) + advice);
    }

    public static string OtherSettings(string checkpoint, string why) =>
        $"{checkpoint}: written by a run with different training settings ({why}); resume with the same settings, or start a new run folder";

    public static string CheckpointsAlready(string checkpoints, string newest) =>
        $"{checkpoints} already holds checkpoints (newest: {Path.GetFileName(newest)}); pass --resume latest to continue that run, or choose another --out";
}
