using System.Diagnostics;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>The code version a result was produced by: <c>git rev-parse HEAD</c> and whether tracked files differed from it.</summary>
public sealed record CommitInfo(string Commit, bool Dirty, IReadOnlyList<string> ChangedFiles)
{
    public static CommitInfo Read(string repoRoot)
    {
        string head = Git(repoRoot, "rev-parse HEAD").Trim();
        var changed = Git(repoRoot, "status --porcelain --untracked-files=no")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToList();
        return new CommitInfo(head.Length > 0 ? head : "unknown", changed.Count > 0, changed);
    }

    public override string ToString() => Commit + (Dirty ? $" + uncommitted changes ({ChangedFiles.Count} files)" : " (clean)");

    private static string Git(string dir, string args)
    {
        try
        {
            var psi = new ProcessStartInfo("git", $"-C \"{dir}\" {args}") { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? output : "";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "";
        }
    }
}
