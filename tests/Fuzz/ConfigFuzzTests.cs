using System.Text;
using DiffusionPeft.Core.Text;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// config.json (UNet, VAE, text encoder), scheduler_config.json, model_index.json and the tokenizer's files of the golden
/// diffusers folder, with JSON values of the wrong type, negative / huge / fractional / non-finite numbers, nulls in
/// lists, repeated keys, deep nesting and byte damage, through the config readers, the scheduler factory, the folder's
/// component index and the tokenizer: each is read or refused with an <see cref="InvalidDataException"/> naming the file.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class ConfigFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static string Model => Path.Combine(GoldenData.Dir, "tiny_sd15_diffusers", "model");

    private static readonly (string File, Action<string> Read)[] Targets =
    [
        ("unet/config.json", p => UNet2DConditionConfig.Load(p).MinimumParameters()),
        ("vae/config.json", p => AutoencoderKLConfig.Load(p).MinimumParameters()),
        ("text_encoder/config.json", p => ClipTextConfig.Load(p).MinimumParameters()),
        ("scheduler/scheduler_config.json", p =>
        {
            var config = SchedulerConfig.Load(p);
            if (config.ClassName is not null) SchedulerFactory.FromConfig(config);
            foreach (var name in SchedulerFactory.Names) SchedulerFactory.Create(name, config);
        }),
        ("model_index.json", p =>
        {
            var folder = DiffusersModelFolder.Open(Path.GetDirectoryName(p)!);
            folder.RequireComponents("unet", "vae", "text_encoder", "tokenizer", "scheduler");
        }),
        ("tokenizer/tokenizer_config.json", p => ClipTokenizer.FromFolder(Path.GetDirectoryName(p)!).EncodeForModel("a photo of a sks dog")),
        ("tokenizer/special_tokens_map.json", p => ClipTokenizer.FromFolder(Path.GetDirectoryName(p)!).EncodeForModel("a photo of a sks dog")),
        ("tokenizer/vocab.json", p => ClipTokenizer.FromFolder(Path.GetDirectoryName(p)!).EncodeForModel("a photo of a sks dog")),
        ("tokenizer/merges.txt", p => ClipTokenizer.FromFolder(Path.GetDirectoryName(p)!).EncodeForModel("a photo of a sks dog")),
    ];

    [Fact]
    public void HostileConfigsAreRefusedWithInvalidDataException()
    {
        var r = FuzzSettings.Random("configs");
        var harness = new FuzzHarness("configs", output);
        for (int i = 0, n = FuzzSettings.Cases(300); i < n; i++)
        {
            var (file, read) = Targets[r.Next(Targets.Length)];
            var source = File.ReadAllText(Path.Combine(Model, file));
            string text, what;
            if (file.EndsWith(".json", StringComparison.Ordinal) && r.Next(4) != 0)
                (text, what) = JsonMutator.Mutate(source, r);
            else
            {
                var (bytes, w) = ByteMutator.Mutate(Encoding.UTF8.GetBytes(source), r);
                (text, what) = (Encoding.UTF8.GetString(bytes), w);
            }
            var folder = ModelFolderFuzzTests.LinkedCopy(Model, _tmp.File($"case{i:D5}"), file, Encoding.UTF8.GetBytes(text));
            var path = Path.Combine(folder, file);
            harness.Run($"case {i}: {file} {what}", path, text.Length, typeof(InvalidDataException), () => read(path));
            Directory.Delete(folder, recursive: true);
        }
        harness.AssertClean();
    }
}
