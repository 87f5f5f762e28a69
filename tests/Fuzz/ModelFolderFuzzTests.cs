using System.Text;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// Whole diffusers folders: the golden tiny SD 1.5 folder with one file damaged (a config's JSON values, a weight file's
/// tensor shapes, dtypes and names, byte damage anywhere) or missing, loaded end to end by
/// <see cref="StableDiffusionLoader.Load"/>: a model, or an <see cref="InvalidDataException"/> naming a file of the folder
/// (a missing file: <see cref="FileNotFoundException"/> / <see cref="DirectoryNotFoundException"/>).
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class ModelFolderFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static string Model => Path.Combine(GoldenData.Dir, "tiny_sd15_diffusers", "model");

    /// <summary>A copy of <paramref name="source"/> made of symbolic links, except <paramref name="changed"/> (relative), written with <paramref name="bytes"/> (null: left out).</summary>
    public static string LinkedCopy(string source, string target, string changed, byte[]? bytes)
    {
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(source, file);
            var dest = Path.Combine(target, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            if (rel != changed) File.CreateSymbolicLink(dest, file);
        }
        if (bytes is not null) File.WriteAllBytes(Path.Combine(target, changed), bytes);
        return target;
    }

    [Fact]
    public void HostileModelFoldersLoadOrAreRefusedWithInvalidDataException()
    {
        var files = Directory.EnumerateFiles(Model, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(Model, f)).Order(StringComparer.Ordinal).ToArray();
        var r = FuzzSettings.Random("folders");
        var harness = new FuzzHarness("model folders", output);
        for (int i = 0, n = FuzzSettings.Cases(30); i < n; i++)
        {
            var file = files[r.Next(files.Length)];
            var source = File.ReadAllBytes(Path.Combine(Model, file));
            byte[]? bytes;
            string what;
            switch (r.Next(8))
            {
                case 0:
                    (bytes, what) = (null, "deleted");
                    break;
                case 1 or 2:
                    (bytes, what) = ByteMutator.Mutate(source, r);
                    break;
                default:
                    if (file.EndsWith(".json", StringComparison.Ordinal))
                    {
                        var (json, w) = JsonMutator.Mutate(Encoding.UTF8.GetString(source), r);
                        (bytes, what) = (Encoding.UTF8.GetBytes(json), w);
                    }
                    else if (file.EndsWith(".safetensors", StringComparison.Ordinal))
                    {
                        var raw = RawSafetensors.Read(source);
                        what = raw.MutateTensors(r);
                        bytes = raw.Write();
                    }
                    else (bytes, what) = ByteMutator.Mutate(source, r);
                    break;
            }
            var folder = LinkedCopy(Model, _tmp.File($"case{i:D5}"), file, bytes);
            var variant = r.Next(4) == 0 ? "fp16" : null;
            harness.Run($"case {i}: {file} {what} (variant {variant ?? "none"})", folder, bytes?.Length ?? 0, typeof(InvalidDataException), () =>
            {
                using var model = StableDiffusionLoader.Load(folder, variant: variant);
            }, [typeof(FileNotFoundException), typeof(DirectoryNotFoundException)], extraMemory: 64L << 20);
            Directory.Delete(folder, recursive: true);
        }
        harness.AssertClean();
    }
}
