using DiffusionPeft.Diffusion.Loading;

namespace DiffusionPeft.Diffusion.IO;

/// <summary>
/// The model, config, adapter and prompt-file families refuse a bad file with one exception type,
/// <see cref="InvalidDataException"/>, whose message names the file and the fault. The building blocks below them raise
/// more specific types (<see cref="InvalidSafetensorsException"/>, <see cref="StateDictMismatchException"/>,
/// <see cref="PickleCheckpointException"/>); the families' public entry points pass those on as an
/// <see cref="InvalidDataException"/> with the same message and the specific exception as its InnerException.
/// </summary>
public static class InvalidInput
{
    public static bool IsSpecific(Exception e) => e is InvalidSafetensorsException or StateDictMismatchException or PickleCheckpointException;

    public static T Guard<T>(Func<T> read)
    {
        try { return read(); }
        catch (Exception e) when (IsSpecific(e)) { throw new InvalidDataException(e.Message, e); }
    }

    public static void Guard(Action read)
    {
        try { read(); }
        catch (Exception e) when (IsSpecific(e)) { throw new InvalidDataException(e.Message, e); }
    }
}
