using System.Text;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Tests.IO;
using Xunit.Abstractions;
using static TorchSharp.torch;
using AdapterMethod = DiffusionPeft.Adapters.AdapterMethod;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// Adapter files: ours (LoRA, DoRA, SingLoRA, SDS-LoRA, written by <see cref="DpeftAdapterFile.Save"/> from the golden tiny
/// SD 1.5 model) and the golden kohya and diffusers/PEFT files, with their metadata's JSON values damaged (non-finite,
/// negative or misshapen alpha, rank, dropout, tolerance; targets whose component or path is missing, null or wrong;
/// negative layer shapes), tensors of other shapes, ranks, dtypes and names, and byte damage. Each goes through inspect
/// (<see cref="AdapterInspector.Inspect"/>), import (<see cref="LoraImporter.Load"/> into the model), export
/// (<see cref="StandaloneAdapters.Load"/> then kohya and PEFT) and resume (<see cref="DpeftAdapterFile.Load"/> as trainable
/// adapters): an <see cref="InvalidDataException"/> naming the file, or success; a failed import leaves the model unchanged.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class AdapterFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static string Folder => Path.Combine(GoldenData.Dir, "tiny_sd15_diffusers", "model");

    private static List<(string Name, byte[] Bytes)> Bases(StableDiffusionModel model, string dir)
    {
        var bases = new List<(string, byte[])>
        {
            ("kohya", File.ReadAllBytes(GoldenData.FileOf("lora_kohya_tiny", "lora"))),
            ("peft", File.ReadAllBytes(Path.Combine(GoldenData.Dir, "lora_peft_tiny", "pytorch_lora_weights.safetensors"))),
        };
        foreach (var method in new[] { AdapterMethod.Lora, AdapterMethod.Dora, AdapterMethod.SingLora, AdapterMethod.SdsLora })
        {
            var options = new AdapterOptions { Method = method, Rank = 2, Alpha = 3, RampSteps = 10 };
            AdapterInjector.Inject(model.Unet, options, InjectionTargets.UNetAttention, AdapterComponents.UNet);
            if (method != AdapterMethod.Dora) AdapterInjector.Inject(model.TextEncoder, options, InjectionTargets.TextEncoderAttention, AdapterComponents.TextEncoder);
            var path = Path.Combine(dir, $"{method}.safetensors");
            DpeftAdapterFile.Save(path, AdapterComponents.Collect(ActiveAdapters.Components(model)), "test-base", """{"steps": 10}""");
            RemoveAdapters(model);
            bases.Add(($"ours-{method}", File.ReadAllBytes(path)));
        }
        return bases;
    }

    private static void RemoveAdapters(StableDiffusionModel model)
    {
        foreach (var root in ActiveAdapters.Components(model).Values)
            foreach (var (path, _) in AdapterInjector.AdaptedLayers(root).ToList())
                AdapterInjector.Remove(root, path);
    }

    private static int AdaptedLayers(StableDiffusionModel model) =>
        ActiveAdapters.Components(model).Values.Sum(root => AdapterInjector.AdaptedLayers(root).Count);

    [Fact]
    public void HostileAdapterFilesAreRefusedWithInvalidDataException()
    {
        using var model = StableDiffusionLoader.Load(Folder);
        var bases = Bases(model, _tmp.Path);
        var r = FuzzSettings.Random("adapters");
        var harness = new FuzzHarness("adapter files", output);
        for (int i = 0, n = FuzzSettings.Cases(150); i < n; i++)
        {
            var (name, source) = bases[r.Next(bases.Count)];
            var (bytes, what) = Mutate(source, name, r);
            var path = _tmp.File($"case{i:D5}.safetensors");
            File.WriteAllBytes(path, bytes);
            string label = $"case {i}: {name} {what}";
            harness.Run($"{label} (inspect)", path, bytes.Length, typeof(InvalidDataException), () => AdapterInspector.Describe(AdapterInspector.Inspect(path)));
            harness.Run($"{label} (import)", path, bytes.Length, typeof(InvalidDataException), () =>
            {
                try
                {
                    var result = LoraImporter.Load(path, ActiveAdapters.Components(model), scale: 0.8);
                    Assert.NotEmpty(result.Layers);
                }
                catch (InvalidDataException)
                {
                    Assert.Equal(0, AdaptedLayers(model)); // a refused file leaves the model as it was
                    throw;
                }
                finally { RemoveAdapters(model); }
            });
            if (name.StartsWith("ours", StringComparison.Ordinal))
            {
                harness.Run($"{label} (export)", path, bytes.Length, typeof(InvalidDataException), () =>
                {
                    var (_, entries) = StandaloneAdapters.Load(path);
                    using var scope = NewDisposeScope();
                    KohyaFormat.Export(_tmp.File($"case{i:D5}.kohya.safetensors"), entries);
                    PeftFormat.Export(_tmp.File($"case{i:D5}.peft.safetensors"), entries);
                });
                harness.Run($"{label} (resume)", path, bytes.Length, typeof(InvalidDataException), () =>
                {
                    try { DpeftAdapterFile.Load(path, ActiveAdapters.Components(model), trainable: true, expectedBaseModel: "test-base"); }
                    finally { RemoveAdapters(model); }
                });
            }
            foreach (var f in Directory.GetFiles(_tmp.Path, $"case{i:D5}*")) File.Delete(f);
        }
        harness.AssertClean();
    }

    private static (byte[] Bytes, string What) TensorMutation(RawSafetensors raw, Random r)
    {
        int count = 1 + r.Next(2);
        var what = string.Join("; ", Enumerable.Range(0, count).Select(_ => raw.MutateTensors(r)));
        return (raw.Write(), what);
    }

    private static (byte[] Bytes, string What) Mutate(byte[] source, string name, Random r)
    {
        var raw = RawSafetensors.Read(source);
        switch (r.Next(name.StartsWith("ours", StringComparison.Ordinal) ? 6 : 4))
        {
            case 0:
                return ByteMutator.Mutate(source, r);
            case 1 or 2:
                return TensorMutation(raw, r);
            case 3:
            {
                // kohya alphas: non-finite, negative, zero, several values.
                var alphas = raw.Tensors.Where(t => t.Name.EndsWith(".alpha", StringComparison.Ordinal)).ToList();
                if (alphas.Count == 0) return TensorMutation(raw, r);
                var a = alphas[r.Next(alphas.Count)];
                float v = new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, -4f, 0f, 1e38f }[r.Next(6)];
                var data = BitConverter.GetBytes(v);
                raw.Tensors[raw.Tensors.IndexOf(a)] = r.Next(3) == 0 ? RawSafetensors.Reshaped(a, [3], "F32") : a with { DType = "F32", Shape = [], Data = data };
                return (raw.Write(), $"alpha '{a.Name}' := {v}");
            }
            default:
            {
                // Our metadata: options, targets and ramp are JSON strings.
                var key = new[] { "options", "targets", "targets", "ramp", "format", "base_model" }[r.Next(6)];
                if (!raw.Metadata.TryGetValue(key, out var json)) return (source, "unchanged");
                var (mutated, what) = key is "format" or "base_model" ? (r.Next(2) == 0 ? "x" : "", "replaced") : JsonMutator.Mutate(json, r);
                if (r.Next(8) == 0) { raw.Metadata.Remove(key); what = "removed"; }
                else raw.Metadata[key] = mutated;
                return (raw.Write(), $"metadata '{key}' {what}");
            }
        }
    }
}
