using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Adapters.Inference;
using DiffusionPeft.Cli;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Tests.Golden;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Cli;

/// <summary>`dpeft adapter inspect | export | merge` and `dpeft generate --adapter` on every golden LoRA case and its base folder case.</summary>
[Trait("Category", "Golden")]
public sealed class AdapterCommandTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-adapter-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    public static TheoryData<string> LoraCases => GoldenData.CasesOfKind("lora");

    public static TheoryData<string, AdapterMethod> FolderCasesAndMethods
    {
        get
        {
            var data = new TheoryData<string, AdapterMethod>();
            foreach (var c in GoldenData.CaseNames("diffusers_folder"))
                foreach (var m in new[] { AdapterMethod.SingLora, AdapterMethod.Dora, AdapterMethod.SdsLora }) data.Add(c, m);
            return data;
        }
    }

    private static GoldenFolderCase BaseOf(string loraCase) => Adapters.LoraGoldenTests.BaseCase(loraCase);
    private static string Lora(string loraCase) => GoldenData.FileOf(loraCase, "lora");

    private static (int Code, string Out, string Err) Dpeft(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>The UNet on fixed random inputs of the model's own channel count and sample size.</summary>
    private static Tensor UNetOutput(StableDiffusionModel model)
    {
        using var _ = no_grad();
        var config = model.Unet.Config;
        var sample = randn(1, config.InChannels, config.SampleSize, config.SampleSize, generator: new Generator(3));
        var context = randn(1, 77, config.CrossAttentionDim[0], generator: new Generator(4));
        return model.Unet.forward(sample, tensor(321L), context);
    }

    /// <summary>Format, ranks, alphas, module counts per component and metadata, as the file's own tensors and header state them.</summary>
    [Theory, MemberData(nameof(LoraCases))]
    public void InspectDescribesTheFile(string caseName)
    {
        var file = Lora(caseName);
        var modules = GoldenLoraFile.Modules(file);
        var entry = GoldenData.Case(caseName);
        // The manifest's rank/alpha, where it states them, are what the tensors hold (a check of this test's reading).
        if (entry["rank"] is JsonValue rank) Assert.All(modules, m => Assert.Equal((int)rank, m.Rank));
        if (entry["alpha"] is JsonValue alpha) Assert.All(modules, m => Assert.Equal((double)alpha, m.Alpha));

        var r = Dpeft("adapter", "inspect", file);
        Assert.True(r.Code == 0, r.Err);
        var inv = CultureInfo.InvariantCulture;
        if (GoldenLoraFile.FormatName(caseName) is { } format) Assert.Contains($"format:      {format}", r.Out);
        else output.WriteLine($"skipped the format line: {caseName} states format {entry["format"]?.ToJsonString()}");
        Assert.Contains($"rank:        {string.Join(", ", modules.Select(m => m.Rank).Distinct().Order())}", r.Out);
        if (modules.All(m => m.Alpha is null)) Assert.Contains("alpha:       (none stored", r.Out);
        else foreach (var a in modules.Select(m => m.Alpha).OfType<double>().Distinct()) Assert.Matches($@"alpha: .*\b{Regex.Escape(a.ToString("G6", inv))}\b", r.Out);
        Assert.Contains($"modules:     {modules.Count} (", r.Out);
        foreach (var g in modules.GroupBy(m => m.Component)) Assert.Matches($@"modules: .*\b{g.Key} {g.Count()}\b", r.Out);
        foreach (var (k, v) in GoldenLoraFile.Metadata(file)) Assert.Contains($"  {k}: {(v.Length > 200 ? v[..200] : v)}", r.Out);
    }

    [Theory, MemberData(nameof(FolderCasesAndMethods))]
    public void ExportedFilesReproduceOurAdapterInBothFormats(string folderCase, AdapterMethod method)
    {
        var folder = GoldenFolderCase.Load(folderCase).ModelFolder;
        var ours = Path.Combine(_dir, "adapter.safetensors");
        Tensor expected;
        using (var model = StableDiffusionLoader.Load(folder))
        {
            var options = new AdapterOptions { Method = method, Rank = 4, Alpha = 3, RampSteps = 10, InitScale = 0.3 };
            AdapterInjector.Inject(model.Unet, options, InjectionTargets.UNetAttention, "unet");
            var entries = AdapterComponents.Collect(ActiveAdapters.Components(model));
            using (no_grad())
                foreach (var e in entries)
                {
                    foreach (var p in e.Adapter.AdapterParameters()) p.Tensor.copy_(randn_like(p.Tensor) * 0.2);
                    if (e.Adapter is SingLoraLinear s) s.StepCount = 4; // mid-ramp: u = 0.4
                    e.Adapter.InvalidateCaches();
                }
            DpeftAdapterFile.Save(ours, entries, "test-base");
            expected = UNetOutput(model);
            foreach (var e in entries) e.Adapter.Enabled = false;
            Assert.True(TensorAssert.MaxAbsDiff(UNetOutput(model), expected) > 1e-2, "the adapter should change the output a lot");
        }
        var inspect = Dpeft("adapter", "inspect", ours);
        Assert.Contains($"method:      {method}", inspect.Out);

        foreach (var format in new[] { "kohya", "diffusers" })
        {
            var target = Path.Combine(_dir, $"exported.{format}.safetensors");
            var r = Dpeft("adapter", "export", ours, "--format", format, "--out", target);
            Assert.True(r.Code == 0, r.Err);
            using var fresh = StableDiffusionLoader.Load(folder);
            using var active = ActiveAdapters.Apply(fresh, [new AdapterSpec(target)]);
            Assert.Equal(AdapterMethod.Dora == method ? AdapterMethod.Dora : AdapterMethod.Lora, active.Loaded[0].Result.Layers[0].Adapter.Method);
            // Float rounding of refactored factors, amplified through the UNet, stays far below the adapter's own effect (> 1e-2).
            TensorAssert.Close(UNetOutput(fresh), expected, 2e-4, 1e-3, $"{method} exported as {format}");
        }
    }

    [Theory, MemberData(nameof(LoraCases))]
    public void MergeBakesTheAdapterIntoAFolderAndASingleFile(string caseName)
    {
        var baseCase = BaseOf(caseName);
        var folder = baseCase.ModelFolder;
        var lora = Lora(caseName);

        // Folder → folder at each scale diffusers' fused weights were recorded at (else at 1.0): the merged weights are those
        // fused weights, and the merged model computes what base + adapter did.
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        var fusedRuns = io.Entries.Keys.Where(k => k.StartsWith("fused.", StringComparison.Ordinal)).GroupBy(k => k.Split('.')[1]).ToList();
        if (fusedRuns.Count == 0) output.WriteLine($"skipped the fused-weight comparison: {caseName} recorded no fused weights");
        var scales = fusedRuns.Count > 0
            ? fusedRuns.Select(g => (Keys: g.ToList(), Scale: GoldenLoraFile.ScaleOf(GoldenData.Case(caseName)["runs"]![g.Key]!))).ToList()
            : [(Keys: new List<string>(), Scale: 1.0)];
        foreach (var (keys, scale) in scales)
        {
            var spec = new AdapterSpec(lora, scale);
            Tensor withAdapter;
            using (var model = StableDiffusionLoader.Load(folder))
            using (ActiveAdapters.Apply(model, [spec]))
                withAdapter = UNetOutput(model);
            var merged = Path.Combine(_dir, $"merged-{scale.ToString(CultureInfo.InvariantCulture)}");
            var r = Dpeft("adapter", "merge", "--model", folder, "--adapter", spec.ToString(), "--out", merged);
            Assert.True(r.Code == 0, r.Err);
            using (var model = StableDiffusionLoader.Load(merged))
            {
                TensorAssert.Close(UNetOutput(model), withAdapter, 1e-4, 1e-4, $"merged folder at scale {scale}");
                var states = new Dictionary<string, Dictionary<string, Tensor>> { ["unet"] = model.Unet.state_dict(), ["text_encoder"] = model.TextEncoder.state_dict() };
                foreach (var key in keys)
                {
                    var (component, module) = Adapters.LoraGoldenTests.FusedKey(key);
                    var (atol, rtol) = tol.For(key);
                    TensorAssert.Close(states[component][module + ".weight"], io.Read(key), atol, rtol, key);
                }
            }
            Assert.True(File.Exists(Path.Combine(merged, "tokenizer", "vocab.json")));
        }

        // Single file → single file (each tensor keeps its dtype), for every single-file case converted from the base folder.
        var singles = GoldenData.CaseNames("single_file").Where(c => GoldenSingleFileCase.SourceCase(c) == baseCase.Name).ToList();
        if (singles.Count == 0) output.WriteLine($"skipped the single-file merge: no single_file case was converted from {baseCase.Name}");
        foreach (var singleCase in singles)
        {
            var single = GoldenData.FileOf(singleCase, "checkpoint");
            var mergedFile = Path.Combine(_dir, $"merged-{singleCase}.safetensors");
            var r = Dpeft("adapter", "merge", "--model", single, "--configs-from", folder, "--adapter", lora + ":0.5", "--out", mergedFile);
            Assert.True(r.Code == 0, r.Err);
            var source = SafetensorsFile.ReadHeader(single).Entries;
            var result = SafetensorsFile.ReadHeader(mergedFile).Entries;
            Assert.Equal(source.Keys.Order(), result.Keys.Order());
            Assert.All(result, kv => Assert.Equal(source[kv.Key].DType, kv.Value.DType));
            using var baseModel = StableDiffusionLoader.Load(single, configsFrom: folder);
            using var mergedModel = StableDiffusionLoader.Load(mergedFile, configsFrom: folder);
            using (ActiveAdapters.Apply(baseModel, [new AdapterSpec(lora, 0.5)]))
                TensorAssert.Close(UNetOutput(mergedModel), UNetOutput(baseModel), 2e-3, 1e-2, $"merged single file {singleCase} (weights rounded to the file's dtype)");
        }
    }

    /// <summary>A folder whose UNet is sharded, with a sharded fp16 variant beside it: the merged folder holds one
    /// main UNet file and none of the source's shards or indexes (a stale variant index would point at missing shards).</summary>
    [Theory, MemberData(nameof(LoraCases))]
    public void MergeOfAShardedFolderWritesOneFileAndDropsEveryOldIndex(string caseName)
    {
        var baseCase = BaseOf(caseName);
        var folder = baseCase.ModelFolder;
        var lora = Lora(caseName);
        var src = Path.Combine(_dir, "sharded");
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(src, Path.GetRelativePath(folder, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var unetMain = Path.GetFileName(baseCase.MainWeightsFile("unet"));
        var stem = Path.GetFileNameWithoutExtension(unetMain);
        var unetDir = Path.Combine(src, "unet");
        foreach (var f in Directory.GetFiles(unetDir, "*.safetensors")) File.Delete(f);
        using (var io = SafetensorsFile.Open(baseCase.PathOf(baseCase.MainWeightsFile("unet"))))
        {
            var tensors = io.Entries.Keys.ToDictionary(k => k, k => io.Read(k));
            Loading.ShardedSafetensorsTests.WriteShards(unetDir, stem, tensors, 2);
            Loading.ShardedSafetensorsTests.WriteShards(unetDir, $"{stem}.fp16", tensors.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float16)), 2);
        }
        File.Move(Path.Combine(unetDir, $"{stem}.fp16.safetensors.index.json"), Path.Combine(unetDir, $"{stem}.safetensors.index.fp16.json"));

        Tensor withAdapter;
        var merged = Path.Combine(_dir, "merged-sharded");
        using (var model = StableDiffusionLoader.Load(src))
        {
            using (ActiveAdapters.Apply(model, [new AdapterSpec(lora)])) withAdapter = UNetOutput(model);
            AdapterMerge.Write(src, model, [new AdapterSpec(lora)], merged);
        }
        Assert.Equal([unetMain], Directory.GetFiles(Path.Combine(merged, "unet")).Select(Path.GetFileName).Where(n => n != "config.json"));
        using (var model = StableDiffusionLoader.Load(merged))
            TensorAssert.Close(UNetOutput(model), withAdapter, 1e-4, 1e-4, "merged from a sharded folder");
    }

    [Theory, MemberData(nameof(LoraCases))]
    public void GenerateAppliesAdaptersAndRecordsThem(string caseName)
    {
        var baseCase = BaseOf(caseName);
        var lora = Lora(caseName);
        // A size the base case was run at (its plain run, else any), so the UNet and VAE surely take it.
        var call = (baseCase.PlainRun ?? baseCase.Runs.First()).Run["call"]!;
        string width = ((int)call["width"]!).ToString(CultureInfo.InvariantCulture), height = ((int)call["height"]!).ToString(CultureInfo.InvariantCulture);
        string[] common = ["generate", "--model", baseCase.ModelFolder, "--prompt", "a fox", "--steps", "2", "--width", width, "--height", height, "--quiet"];
        Assert.Equal(0, Dpeft([.. common, "--out", Path.Combine(_dir, "plain")]).Code);
        var r = Dpeft([.. common, "--out", Path.Combine(_dir, "lora"), "--adapter", lora + ":0.5"]);
        Assert.True(r.Code == 0, r.Err);
        var png = Path.Combine(_dir, "lora", "0001-a-fox", "000-s0.png");
        Assert.Contains($"Lora weights: \"{Path.GetFileNameWithoutExtension(lora)}: 0.5\"", PngText.Get(PngText.Read(png), "parameters"));
        Assert.NotEqual(ImageLoader.Load(Path.Combine(_dir, "plain", "0001-a-fox", "000-s0.png")).Pixels, ImageLoader.Load(png).Pixels);
        var missing = Dpeft([.. common, "--out", Path.Combine(_dir, "x"), "--adapter", "/nope/a.safetensors"]);
        Assert.NotEqual(0, missing.Code);
        Assert.Contains("/nope/a.safetensors", missing.Err);
    }
}
