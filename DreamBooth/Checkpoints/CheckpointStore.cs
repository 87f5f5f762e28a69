using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace DiffusionPeft.DreamBooth.Checkpoints;

/// <summary>A checkpoint folder that cannot be used: the message names it and the fault.</summary>
public sealed class InvalidCheckpointException(string message) : ArgumentException(message);

/// <summary>
/// RUN/checkpoints/step-000123/ folders. A checkpoint is written into a hidden temporary sibling, every file is
/// fsynced, then the folder is renamed into place (and the parent directory fsynced): a kill at any moment leaves
/// either no new folder or a complete one. Older checkpoints beyond the last K are deleted only after the new one
/// is in place. Temporary folders left by a killed run are removed when the store opens.
/// </summary>
public sealed partial class CheckpointStore
{
    public const string CompleteMarker = "state.json";
    public string Directory { get; }

    public CheckpointStore(string directory)
    {
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
        foreach (var stale in System.IO.Directory.EnumerateDirectories(Directory, ".step-*"))
            try { System.IO.Directory.Delete(stale, recursive: true); } catch (IOException) { /* retried at the next open */ }
    }

    public static string FolderName(long step) => $"step-{step:D6}";

    /// <summary>Complete checkpoints, oldest first.</summary>
    public IReadOnlyList<(long Step, string Path)> List() =>
        System.IO.Directory.EnumerateDirectories(Directory)
            .Select(d => (d, m: StepFolder().Match(Path.GetFileName(d))))
            .Where(x => x.m.Success && File.Exists(Path.Combine(x.d, CompleteMarker)))
            .Select(x => (long.Parse(x.m.Groups[1].Value, CultureInfo.InvariantCulture), x.d))
            .OrderBy(x => x.Item1)
            .ToArray();

    public string? Latest() => List() is { Count: > 0 } l ? l[^1].Path : null;

    /// <summary><c>latest</c> (the newest complete checkpoint here) or a checkpoint folder path.</summary>
    public string Resolve(string resume)
    {
        if (resume.Trim().Equals("latest", StringComparison.OrdinalIgnoreCase))
            return Latest() ?? throw new InvalidCheckpointException($"--resume latest: no complete checkpoint in '{Directory}'");
        var path = Path.GetFullPath(resume);
        if (!System.IO.Directory.Exists(path)) throw new DirectoryNotFoundException($"--resume '{resume}': no such checkpoint folder");
        if (!File.Exists(Path.Combine(path, CompleteMarker)))
            throw new InvalidCheckpointException($"--resume '{resume}': not a complete checkpoint (no {CompleteMarker})");
        return path;
    }

    /// <summary>
    /// Writes a checkpoint for <paramref name="step"/>: <paramref name="write"/> fills the given empty folder and must
    /// write <see cref="CompleteMarker"/> last. Returns the final folder. Keeps the newest <paramref name="keep"/> (0: all).
    /// </summary>
    public string Save(long step, int keep, Action<string> write)
    {
        var final = Path.Combine(Directory, FolderName(step));
        var tmp = Path.Combine(Directory, $".{FolderName(step)}.{Guid.NewGuid():N}.tmp");
        System.IO.Directory.CreateDirectory(tmp);
        try
        {
            write(tmp);
            if (!File.Exists(Path.Combine(tmp, CompleteMarker)))
                throw new InvalidOperationException($"checkpoint writer did not write {CompleteMarker}");
            foreach (var file in System.IO.Directory.EnumerateFiles(tmp, "*", SearchOption.AllDirectories)) FsyncFile(file);
            FsyncDirectory(tmp);
            if (System.IO.Directory.Exists(final))
            {
                // Re-writing a step (a run resumed from an older checkpoint): move the old one aside first.
                var old = Path.Combine(Directory, $".{FolderName(step)}.{Guid.NewGuid():N}.old");
                System.IO.Directory.Move(final, old);
                System.IO.Directory.Move(tmp, final);
                System.IO.Directory.Delete(old, recursive: true);
            }
            else
            {
                System.IO.Directory.Move(tmp, final);
            }
            FsyncDirectory(Directory);
        }
        catch
        {
            try { if (System.IO.Directory.Exists(tmp)) System.IO.Directory.Delete(tmp, recursive: true); } catch (IOException) { }
            throw;
        }
        Prune(keep);
        return final;
    }

    public void Prune(int keep)
    {
        if (keep <= 0) return;
        var all = List();
        for (int i = 0; i < all.Count - keep; i++) System.IO.Directory.Delete(all[i].Path, recursive: true);
    }

    private static void FsyncFile(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        fs.Flush(flushToDisk: true);
    }

    /// <summary>fsync of a directory so a rename is durable (Linux/macOS; .NET has no managed API for it).</summary>
    private static void FsyncDirectory(string path)
    {
        if (OperatingSystem.IsWindows()) return;
        int fd = Open(path, 0 /* O_RDONLY */);
        if (fd < 0) return;
        try { _ = Fsync(fd); } finally { _ = Close(fd); }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync")]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [GeneratedRegex(@"^step-(\d+)$")]
    private static partial Regex StepFolder();
}
