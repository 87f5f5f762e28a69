using DiffusionPeft.DreamBooth.Checkpoints;

namespace DiffusionPeft.Tests.DreamBooth;

public sealed class CheckpointStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-ckpt-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static void WriteComplete(string folder, long step)
    {
        File.WriteAllText(Path.Combine(folder, "adapter.bin"), $"weights {step}");
        File.WriteAllText(Path.Combine(folder, CheckpointStore.CompleteMarker), $"{{\"step\": {step}}}");
    }

    [Fact]
    public void KeepsTheLastKAndResolvesLatest()
    {
        var store = new CheckpointStore(_dir);
        foreach (var step in new long[] { 10, 20, 30, 40, 50 }) store.Save(step, keep: 2, dir => WriteComplete(dir, step));
        Assert.Equal(new long[] { 40, 50 }, store.List().Select(c => c.Step));
        Assert.Equal(Path.Combine(_dir, "step-000050"), store.Latest());
        Assert.Equal(store.Latest(), store.Resolve("latest"));
        Assert.Equal(Path.Combine(_dir, "step-000040"), store.Resolve(Path.Combine(_dir, "step-000040")));
        Assert.Equal("weights 50", File.ReadAllText(Path.Combine(_dir, "step-000050", "adapter.bin")));
        Assert.Empty(Directory.EnumerateDirectories(_dir, ".*"));
    }

    [Fact]
    public void AWriterThatDiesLeavesTheOldCheckpointsUntouched()
    {
        var store = new CheckpointStore(_dir);
        store.Save(5, keep: 1, dir => WriteComplete(dir, 5));
        Assert.Throws<IOException>(() => store.Save(10, keep: 1, dir =>
        {
            File.WriteAllText(Path.Combine(dir, "adapter.bin"), "half");
            throw new IOException("disk full");
        }));
        Assert.Equal(new long[] { 5 }, store.List().Select(c => c.Step));
        Assert.Empty(Directory.EnumerateDirectories(_dir, ".*"));
        Assert.Throws<InvalidOperationException>(() => store.Save(10, keep: 1, dir => File.WriteAllText(Path.Combine(dir, "x"), "no marker")));
        Assert.Equal(new long[] { 5 }, store.List().Select(c => c.Step));
    }

    [Fact]
    public void LeftoversOfAKilledWriterAreIgnoredThenRemoved()
    {
        var store = new CheckpointStore(_dir);
        store.Save(5, keep: 0, dir => WriteComplete(dir, 5));
        // A SIGKILL during a save leaves a hidden temporary folder; one during a rename cannot leave a partial step folder.
        var tmp = Directory.CreateDirectory(Path.Combine(_dir, ".step-000010.deadbeef.tmp")).FullName;
        WriteComplete(tmp, 10);
        var incomplete = Directory.CreateDirectory(Path.Combine(_dir, "step-000015")).FullName; // e.g. copied by hand, no marker
        Assert.Equal(Path.Combine(_dir, "step-000005"), store.Latest());
        var reopened = new CheckpointStore(_dir);
        Assert.False(Directory.Exists(tmp));
        Assert.Equal(Path.Combine(_dir, "step-000005"), reopened.Latest());
        var ex = Assert.Throws<InvalidCheckpointException>(() => reopened.Resolve(incomplete));
        Assert.Contains("not a complete checkpoint", ex.Message);
    }

    [Fact]
    public void ResolveErrorsAreClear()
    {
        var store = new CheckpointStore(_dir);
        Assert.Contains("no complete checkpoint", Assert.Throws<InvalidCheckpointException>(() => store.Resolve("latest")).Message);
        Assert.Throws<DirectoryNotFoundException>(() => store.Resolve(Path.Combine(_dir, "nowhere")));
    }

    [Fact]
    public void RewritingAStepReplacesIt()
    {
        var store = new CheckpointStore(_dir);
        store.Save(5, keep: 0, dir => WriteComplete(dir, 5));
        store.Save(5, keep: 0, dir => { File.WriteAllText(Path.Combine(dir, "adapter.bin"), "new"); File.WriteAllText(Path.Combine(dir, CheckpointStore.CompleteMarker), "{}"); });
        Assert.Equal("new", File.ReadAllText(Path.Combine(_dir, "step-000005", "adapter.bin")));
        Assert.Single(store.List());
    }
}
