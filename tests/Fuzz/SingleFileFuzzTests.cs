using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// Single-file checkpoints: the golden tiny SD 1.5 single file with tensors of other ranks, shapes and dtypes, renamed,
/// removed or repeated, and byte damage, through <see cref="SingleFileCheckpoint.Open"/> (config inference and key
/// mapping) and, for every third case, a full <see cref="StableDiffusionLoader.Load"/>.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class SingleFileFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void HostileSingleFilesLoadOrAreRefusedWithInvalidDataException()
    {
        var checkpoint = GoldenData.FileOf("tiny_sd15_single_file", "checkpoint");
        var tokenizer = Path.Combine(GoldenData.Dir, "tiny_sd15_diffusers", "model", "tokenizer");
        var source = File.ReadAllBytes(checkpoint);
        var r = FuzzSettings.Random("single-file");
        var harness = new FuzzHarness("single files", output);
        for (int i = 0, n = FuzzSettings.Cases(45); i < n; i++)
        {
            byte[] bytes;
            string what;
            if (r.Next(4) == 0)
            {
                // Damage inside the header, where it changes what the file says rather than only its values.
                var (damaged, w) = ByteMutator.Mutate(source[..Math.Min(source.Length, 200_000)], r);
                (bytes, what) = ([.. damaged, .. source[Math.Min(source.Length, 200_000)..]], $"header region {w}");
            }
            else
            {
                var raw = RawSafetensors.Read(source);
                int count = 1 + r.Next(3);
                what = string.Join("; ", Enumerable.Range(0, count).Select(_ => raw.MutateTensors(r)));
                bytes = raw.Write();
            }
            var path = _tmp.File($"case{i:D5}.safetensors");
            File.WriteAllBytes(path, bytes);
            harness.Run($"case {i}: {what} (SingleFileCheckpoint.Open)", path, bytes.Length, typeof(InvalidDataException), () =>
            {
                using var ckpt = SingleFileCheckpoint.Open(path);
            });
            if (i % 3 == 0)
                harness.Run($"case {i}: {what} (StableDiffusionLoader.Load)", path, bytes.Length, typeof(InvalidDataException), () =>
                {
                    using var model = StableDiffusionLoader.Load(path, tokenizerDir: tokenizer);
                }, extraMemory: 64L << 20);
            File.Delete(path);
        }
        harness.AssertClean();
    }
}
