using System.Text.Json;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.DreamBooth.Checkpoints;

/// <summary>
/// The scalar part of a checkpoint (state.json): steps taken (= LR-schedule position), SingLoRA ramp step, data
/// order, the training RNG's full state, elapsed time and the hash of the training-relevant configuration.
/// </summary>
public sealed record TrainingState(
    long Step,
    long RampStep,
    int DataEpoch,
    int DataPosition,
    string RngState,
    double ElapsedSeconds,
    string ConfigHash,
    int FormatVersion = TrainingState.CurrentFormat)
{
    public const int CurrentFormat = 1;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public DataOrderState DataOrder => new(DataEpoch, DataPosition);
    public byte[] RngBytes => Convert.FromBase64String(RngState);

    public void Write(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    public static TrainingState Read(string path)
    {
        TrainingState? s;
        try { s = JsonSerializer.Deserialize<TrainingState>(File.ReadAllText(path), Json); }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new InvalidCheckpointException($"{path}: unreadable checkpoint state ({ex.Message})");
        }
        if (s is null || s.Step < 0 || s.DataEpoch < 0 || s.DataPosition < 0 || string.IsNullOrEmpty(s.RngState) || s.ConfigHash is null
            || !double.IsFinite(s.ElapsedSeconds) || !Convert.TryFromBase64String(s.RngState, new byte[s.RngState.Length], out _))
            throw new InvalidCheckpointException($"{path}: incomplete or damaged checkpoint state");
        if (s.FormatVersion != CurrentFormat)
            throw new InvalidCheckpointException($"{path}: checkpoint format {s.FormatVersion}, this build reads format {CurrentFormat}");
        return s;
    }
}
