using System.Text.Json.Nodes;
using DiffusionPeft.Adapters;
using DiffusionPeft.Adapters.Formats;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Tests.Golden;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static DiffusionPeft.Tests.Adapters.AdapterTestUtil;
using Module = TorchSharp.torch.nn.Module;

namespace DiffusionPeft.Tests.Adapters;

public sealed class AdapterFormatTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-adapters-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    public enum Format { Dpeft, Peft, Kohya }

    public static TheoryData<AdapterMethod, Format> Cases()
    {
        var data = new TheoryData<AdapterMethod, Format>();
        foreach (var m in AllMethods) foreach (var f in Enum.GetValues<Format>()) data.Add(m, f);
        return data;
    }

    private static (FakeUNet UNet, FakeTextEncoder Te, Dictionary<string, Module> Components) Models()
    {
        var unet = new FakeUNet();
        var te = new FakeTextEncoder();
        return (unet, te, new Dictionary<string, Module> { ["unet"] = unet, ["text_encoder"] = te });
    }

    private static (Tensor, Tensor) Outputs(FakeUNet unet, FakeTextEncoder te)
    {
        manual_seed(99);
        var x = randn([2, 3, 8], ScalarType.Float64);
        using var _ = no_grad();
        return (unet.forward(x), te.forward(x));
    }

    /// <summary>Train-side model with adapters moved off init → export → fresh model → import: same outputs.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void ExportImportRoundTripGivesSameOutputs(AdapterMethod method, Format format)
    {
        using var scope = NewDisposeScope();
        var (unet, te, components) = Models();
        var options = new AdapterOptions { Method = method, Rank = 2, Alpha = 3, RampSteps = 8 };
        var targets = InjectionTargets.UNetAttention.WithOverride(@"attn2\.to_k$", rank: 3, alpha: 1.5);
        AdapterInjector.Inject(unet, options, targets, "unet");
        AdapterInjector.Inject(te, options, InjectionTargets.TextEncoderAttention, "text_encoder");
        manual_seed(5);
        var entries = AdapterComponents.Collect(components);
        Assert.Equal(48, entries.Count);
        foreach (var e in entries) Perturb(e.Adapter);
        if (method == AdapterMethod.SingLora) foreach (var e in entries) ((SingLoraLinear)e.Adapter).StepCount = 3;
        var (u0, t0) = Outputs(unet, te);
        var (ub, tb) = Outputs(new FakeUNet(), new FakeTextEncoder());
        Assert.True((u0 - ub).abs().max().item<double>() > 1e-3, "adapters change the UNet output");

        string file = Path.Combine(_dir, $"{method}-{format}.safetensors");
        switch (format)
        {
            case Format.Dpeft: DpeftAdapterFile.Save(file, entries, "sha256:base", """{"lr":1e-4}"""); break;
            case Format.Peft: PeftFormat.Export(file, entries); break;
            default: KohyaFormat.Export(file, entries); break;
        }

        var (unet2, te2, components2) = Models();
        var result = LoraImporter.Load(file, components2);
        Assert.Empty(result.UnknownKeys);
        Assert.Empty(result.UnresolvedModules);
        Assert.Equal(48, result.Layers.Count);
        var (u1, t1) = Outputs(unet2, te2);
        // kohya stores alpha as float32: s = alpha / rank carries ~1e-7 relative error
        double tol = format == Format.Kohya ? 1e-6 : 1e-11;
        TensorAssert.Close(u1, u0, tol, tol, $"{method} via {format}: UNet output");
        TensorAssert.Close(t1, t0, tol, tol, $"{method} via {format}: text encoder output");
        Assert.All(result.Layers, l => Assert.Equal(format == Format.Dpeft ? method : method == AdapterMethod.Dora ? AdapterMethod.Dora : AdapterMethod.Lora, l.Adapter.Method));
        var keys = SafetensorsFile.ReadHeader(file).Entries.Keys.ToList();
        switch (format)
        {
            case Format.Kohya:
                Assert.Contains("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_down.weight", keys);
                Assert.Contains("lora_te_text_model_encoder_layers_1_self_attn_q_proj.alpha", keys);
                Assert.Equal(method == AdapterMethod.Dora, keys.Any(k => k.EndsWith(".dora_scale")));
                break;
            case Format.Peft:
                Assert.Contains("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.lora_A.weight", keys);
                Assert.Contains("text_encoder.text_model.encoder.layers.1.self_attn.q_proj.lora_B.weight", keys);
                Assert.DoesNotContain(keys, k => k.EndsWith("alpha"));
                break;
        }
    }

    [Fact]
    public void OurFormatKeepsMetadataAndResumes()
    {
        using var scope = NewDisposeScope();
        var (unet, _, _) = Models();
        AdapterInjector.Inject(unet, new AdapterOptions { Method = AdapterMethod.SingLora, Rank = 2, Alpha = 4, RampSteps = 10, InitScale = 0.5 },
            InjectionTargets.UNetAttention.WithOverride("to_q$", rank: 3), "unet");
        var components = new Dictionary<string, Module> { ["unet"] = unet };
        var entries = AdapterComponents.Collect(components);
        foreach (var e in entries) ((SingLoraLinear)e.Adapter).StepCount = 7;
        string file = Path.Combine(_dir, "ours.safetensors");
        DpeftAdapterFile.Save(file, entries, "sha256:abc", """{"steps":400,"lr":0.0001}""");
        var info = DpeftAdapterFile.ReadInfo(file);
        Assert.Equal(AdapterMethod.SingLora, info.Options.Method);
        Assert.Equal(0.5, info.Options.InitScale);
        Assert.Equal(7, info.RampStep);
        Assert.Equal("sha256:abc", info.BaseModel);
        Assert.Equal("""{"steps":400,"lr":0.0001}""", info.Training);
        Assert.Equal(40, info.Targets.Count);
        Assert.All(info.Targets, t => Assert.Equal(t.Path.EndsWith("to_q") ? 3 : 2, t.Rank));
        Assert.Contains("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.singlora_A", SafetensorsFile.ReadHeader(file).Entries.Keys);

        var fresh = new FakeUNet();
        var (_, loaded) = DpeftAdapterFile.Load(file, new Dictionary<string, Module> { ["unet"] = fresh }, trainable: true, expectedBaseModel: "sha256:abc");
        Assert.All(loaded, e => Assert.Equal(7, ((SingLoraLinear)e.Adapter).StepCount));
        Assert.All(loaded, e => Assert.True(((SingLoraLinear)e.Adapter).singlora_A.requires_grad));
        var x = randn([1, 2, 8], ScalarType.Float64);
        TensorAssert.Close(fresh.forward(x), unet.forward(x), 0, 0, "resumed model");
        Assert.Throws<InvalidDataException>(() => DpeftAdapterFile.Load(file, new Dictionary<string, Module> { ["unet"] = new FakeUNet() }, expectedBaseModel: "sha256:other"));
    }

    /// <summary>The lora case's base model as Linear layers at their module paths, read from the base folder's main weights.</summary>
    private static Dictionary<string, Module> GoldenBase(string caseName)
    {
        var baseCase = LoraGoldenTests.BaseCase(caseName);
        PathTree Tree(string component)
        {
            using var f = SafetensorsFile.Open(baseCase.PathOf(baseCase.MainWeightsFile(component)));
            var leaves = f.Entries.Values.Where(e => e.Name.EndsWith(".weight") && e.Shape.Length == 2)
                .Select(e => (e.Name[..^".weight".Length], f.Read(e.Name), f.Contains(e.Name[..^6] + "bias") ? f.Read(e.Name[..^6] + "bias") : null)).ToList();
            return PathTree.Build(leaves);
        }
        return new Dictionary<string, Module> { ["unet"] = Tree("unet"), ["text_encoder"] = Tree("text_encoder") };
    }

    public static TheoryData<string> LoraCases => GoldenData.CasesOfKind("lora");

    /// <summary>
    /// The file's modules each become one layer scaled by run scale · alpha / rank of that module's own tensors (alpha = rank
    /// where the file stores none); merged at a recorded run's scale they equal diffusers 0.25's fuse_lora weights.
    /// </summary>
    [Theory, MemberData(nameof(LoraCases))]
    [Trait("Category", "Golden")]
    public void ImportedLayersScaleByTheFilesAlphaAndFuseLikeDiffusers(string caseName)
    {
        using var scope = NewDisposeScope();
        var lora = GoldenData.FileOf(caseName, "lora");
        var modules = GoldenLoraFile.Modules(lora);
        if (GoldenData.Case(caseName)["targets"]?["count"] is JsonValue count) Assert.Equal((int)count, modules.Count);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var fused = io.Entries.Keys.Where(k => k.StartsWith("fused.", StringComparison.Ordinal)).GroupBy(k => k.Split('.')[1]).ToList();
        var runs = fused.Count > 0 ? fused.Select(g => (g.Key, GoldenLoraFile.ScaleOf(GoldenData.Case(caseName)["runs"]![g.Key]!))).ToList() : [("(no fused weights)", 1.0)];
        var tol = GoldenData.ToleranceOf(caseName);
        int checkedCount = 0;
        foreach (var (run, scale) in runs)
        {
            var components = GoldenBase(caseName);
            var result = LoraImporter.Load(lora, components, scale);
            if (GoldenLoraFile.FormatName(caseName) is { } format) Assert.Equal(format, result.Format);
            else output.WriteLine($"skipped the format check: {caseName} states format {GoldenData.Case(caseName)["format"]?.ToJsonString()}");
            Assert.Equal(modules.Count, result.Layers.Count);
            Assert.Empty(result.UnknownKeys);
            Assert.Empty(result.UnresolvedModules);
            foreach (var l in result.Layers)
            {
                var module = modules.Single(m => m.Is(l.Component, l.Path));
                Assert.True(Math.Abs(scale * module.AlphaOverRank - l.Adapter.Scaling) <= 1e-12 * Math.Abs(scale * module.AlphaOverRank),
                    $"{l.Component}.{l.Path}: scaling {l.Adapter.Scaling}, expected {scale} * alpha {module.Alpha?.ToString() ?? "(none: rank)"} / rank {module.Rank}");
            }
            foreach (var l in result.Layers) l.Adapter.Merge();
            foreach (var key in fused.Where(g => g.Key == run).SelectMany(g => g))
            {
                var (component, path) = LoraGoldenTests.FusedKey(key);
                var layer = (AdapterLayer)AdapterInjector.Find(components[component], path)!;
                var (atol, rtol) = tol.For(key);
                TensorAssert.Close(layer.weight, io.Read(key), atol, rtol, key);
                checkedCount++;
            }
        }
        if (fused.Count == 0) output.WriteLine($"skipped the fused-weight comparison: {caseName} recorded no fused weights");
        else Assert.Equal(fused.Sum(g => g.Count()), checkedCount);
    }

    /// <summary>
    /// A file converted from another case's file (derived_from) holds the same matrices: its layers' updates are the source's
    /// times the ratio of the two files' alpha / rank (a PEFT-layout copy has no alpha, so a loader uses alpha = rank).
    /// </summary>
    [Theory, MemberData(nameof(LoraCases))]
    [Trait("Category", "Golden")]
    public void DerivedFileEqualsItsSourceUpToAlpha(string caseName)
    {
        if ((string?)GoldenData.Case(caseName)["derived_from"] is not { } sourceCase)
        {
            output.WriteLine($"skipped: {caseName} is not derived from another case");
            return;
        }
        using var scope = NewDisposeScope();
        var source = LoraImporter.Load(GoldenData.FileOf(sourceCase, "lora"), GoldenBase(sourceCase));
        var derived = LoraImporter.Load(GoldenData.FileOf(caseName, "lora"), GoldenBase(caseName));
        Assert.Empty(derived.UnknownKeys);
        Assert.Equal(source.Layers.Count, derived.Layers.Count);
        var byKey = source.Layers.ToDictionary(l => l.Key);
        foreach (var l in derived.Layers)
        {
            var s = byKey[l.Key];
            TensorAssert.Close(l.Adapter.DeltaWeight(), s.Adapter.DeltaWeight() * (l.Adapter.Scaling / s.Adapter.Scaling), 1e-7, 1e-6, l.Key);
        }
    }

    /// <summary>Hand-written files in other tools' layouts: alpha present or missing, old diffusers names, unknown keys listed.</summary>
    [Fact]
    public void OtherToolsLayoutsAlphaAndUnknownKeys()
    {
        using var scope = NewDisposeScope();
        manual_seed(41);
        var down = randn([2, 8], ScalarType.Float64);
        var up = randn([8, 2], ScalarType.Float64);
        var downK = randn([2, 12], ScalarType.Float64);
        var upK = randn([8, 2], ScalarType.Float64);
        const string q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
        const string k = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k";
        const string o = "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0";
        const string tq = "text_model.encoder.layers.1.self_attn.q_proj";
        var file = Path.Combine(_dir, "mixed.safetensors");
        SafetensorsWriter.Write(file, new Dictionary<string, Tensor>
        {
            ["lora_unet_" + q.Replace('.', '_') + ".lora_down.weight"] = down,
            ["lora_unet_" + q.Replace('.', '_') + ".lora_up.weight"] = up,
            ["lora_unet_" + q.Replace('.', '_') + ".alpha"] = tensor(1.0f),                      // alpha/rank = 0.5
            ["unet." + k + ".lora.down.weight"] = downK,                                              // no alpha: scale 1
            ["unet." + k + ".lora.up.weight"] = upK,
            ["unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight"] = down,
            ["unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight"] = up,
            ["text_encoder." + tq + ".lora_linear_layer.down.weight"] = down,
            ["text_encoder." + tq + ".lora_linear_layer.up.weight"] = up,
            ["lora_unet_no_such_module.lora_down.weight"] = down,
            ["some_embedding"] = down,
        });
        var (unet, te, components) = Models();
        var weights = new[] { q, k, o }.ToDictionary(p => p, p => ((TorchSharp.Modules.Linear)AdapterInjector.Find(unet, p)!).weight!.detach().clone());
        var teWeight = ((TorchSharp.Modules.Linear)AdapterInjector.Find(te, tq)!).weight!.detach().clone();
        var result = LoraImporter.Load(file, components, scale: 0.8);
        Assert.Equal(4, result.Layers.Count);
        Assert.Equal(["some_embedding"], result.UnknownKeys);
        Assert.Equal(["unet:no_such_module"], result.UnresolvedModules);
        Assert.Equal(2, result.Warnings.Count());
        var x = randn([3, 8], ScalarType.Float64);
        var c = randn([3, 12], ScalarType.Float64);
        void Check(Module root, string p, Tensor w0, Tensor input, Tensor d, Tensor u, double alphaOverRank)
        {
            var layer = (AdapterLayer)AdapterInjector.Find(root, p)!;
            var expected = nn.functional.linear(input, w0, layer.bias) + input.mm(d.t()).mm(u.t()) * (0.8 * alphaOverRank);
            TensorAssert.Close(layer.forward(input), expected, 1e-12, 1e-10, p);
        }
        Check(unet, q, weights[q], x, down, up, 0.5);
        Check(unet, k, weights[k], c, downK, upK, 1.0);
        Check(unet, o, weights[o], x, down, up, 1.0);
        Check(te, tq, teWeight, x, down, up, 1.0);

        var bad = Path.Combine(_dir, "bad.safetensors");
        SafetensorsWriter.Write(bad, new Dictionary<string, Tensor> { ["unet." + q + ".lora_A.weight"] = downK, ["unet." + q + ".lora_B.weight"] = up });
        var ex = Assert.Throws<InvalidDataException>(() => LoraImporter.Load(bad, Models().Components));
        Assert.Contains(bad, ex.Message);
        Assert.Contains("do not fit", ex.Message);
    }
}
