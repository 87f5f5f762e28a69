using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static DiffusionPeft.Tests.Adapters.AdapterTestUtil;

namespace DiffusionPeft.Tests.Adapters;

public sealed class AdapterInjectorTests
{
    private static readonly string[] Blocks =
    [
        "down_blocks.0.attentions.0", "down_blocks.0.attentions.1", "down_blocks.1.attentions.0", "down_blocks.1.attentions.1", "mid_block.attentions.0",
    ];

    private static IEnumerable<string> AttentionPaths(IEnumerable<string> blocks) =>
        from b in blocks
        from attn in new[] { "attn1", "attn2" }
        from leaf in new[] { "to_q", "to_k", "to_v", "to_out.0" }
        select $"{b}.transformer_blocks.0.{attn}.{leaf}";

    [Fact]
    public void UNetDefaultsTouchExactlyTheAttentionProjectionsAndKeepNames()
    {
        using var scope = NewDisposeScope();
        var unet = new FakeUNet();
        var x = randn([2, 3, 8], ScalarType.Float64);
        var before = unet.forward(x).detach();
        var keysBefore = unet.state_dict().Keys.ToHashSet();
        var report = AdapterInjector.Inject(unet, new AdapterOptions { Rank = 2, Alpha = 2 }, InjectionTargets.UNetAttention, "unet");

        var expected = AttentionPaths(Blocks).ToHashSet();
        Assert.Equal(expected, report.Layers.Select(l => l.Path).ToHashSet());
        Assert.Equal(40, report.Layers.Count);
        var modules = unet.named_modules().ToDictionary(m => m.name, m => m.module);
        foreach (var p in expected) Assert.IsType<LoraLinear>(modules[p]);
        foreach (var b in Blocks) Assert.IsType<Linear>(modules[b + ".transformer_blocks.0.proj_in"]);
        Assert.IsType<Linear>(modules["time_embedding"]);

        var keysAfter = unet.state_dict().Keys.ToHashSet();
        Assert.Subset(keysAfter, keysBefore);
        var added = keysAfter.Except(keysBefore).ToHashSet();
        Assert.Equal(expected.SelectMany(p => new[] { p + ".lora_A", p + ".lora_B" }).ToHashSet(), added);

        foreach (var (name, p) in unet.named_parameters())
            Assert.True(p.requires_grad == (name.EndsWith(".lora_A") || name.EndsWith(".lora_B")), $"{name} requires_grad = {p.requires_grad}");

        TensorAssert.Close(unet.forward(x), before, 1e-14, 0, "B = 0: output unchanged");
        foreach (var l in report.Layers) Perturb(l.Layer);
        Assert.True((unet.forward(x) - before).abs().max().item<double>() > 1e-3, "forward goes through the adapters");

        // per kind: attn1 8x8 with r = 2 -> 32 parameters, attn2 to_k/to_v 12 -> 8 -> 40
        var kinds = report.ByKind;
        Assert.Equal(8, kinds.Count);
        Assert.Equal((5, 5L * 32), kinds["attn1.to_q"]);
        Assert.Equal((5, 5L * 32), kinds["attn2.to_out.0"]);
        Assert.Equal((5, 5L * 40), kinds["attn2.to_k"]);
        Assert.Equal(5L * (6 * 32 + 2 * 40), report.TrainableParameters);
        Assert.Equal(report.TrainableParameters, report.ByMethod[AdapterMethod.Lora]);
    }

    [Fact]
    public void OverridesAndExclusions()
    {
        using var scope = NewDisposeScope();
        var unet = new FakeUNet();
        var targets = InjectionTargets.UNetAttention
            .Excluding(@"^mid_block\.", "glob:down_blocks.1.attentions.1.**.attn1.**")
            .WithOverride(@"attn2\.to_[kv]$", rank: 6)
            .WithOverride("glob:down_blocks.0.**.to_out.0", alpha: 9);
        var report = AdapterInjector.Inject(unet, new AdapterOptions { Method = AdapterMethod.Dora, Rank = 2, Alpha = 2 }, targets, "unet");
        var expected = AttentionPaths(Blocks.Take(4)).Where(p => !(p.StartsWith("down_blocks.1.attentions.1") && p.Contains("attn1"))).ToHashSet();
        Assert.Equal(expected, report.Layers.Select(l => l.Path).ToHashSet());
        foreach (var l in report.Layers)
        {
            Assert.IsType<DoraLinear>(l.Layer);
            Assert.Equal(l.Path.Contains("attn2.to_k") || l.Path.Contains("attn2.to_v") ? 6 : 2, l.Layer.Rank);
            Assert.Equal(l.Path.StartsWith("down_blocks.0") && l.Path.EndsWith("to_out.0") ? 9 : 2, l.Layer.Alpha);
        }
        var modules = unet.named_modules().ToDictionary(m => m.name, m => m.module);
        Assert.IsType<Linear>(modules["mid_block.attentions.0.transformer_blocks.0.attn1.to_q"]);
        Assert.IsType<Linear>(modules["down_blocks.1.attentions.1.transformer_blocks.0.attn1.to_v"]);
        Assert.IsType<DoraLinear>(modules["down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v"]);
    }

    [Fact]
    public void TextEncoderTargetsStackingAndRemoval()
    {
        using var scope = NewDisposeScope();
        var te = new FakeTextEncoder();
        var x = randn([2, 3, 8], ScalarType.Float64);
        var before = te.forward(x).detach();
        var keysBefore = te.state_dict().Keys.ToHashSet();
        var report = AdapterInjector.Inject(te, new AdapterOptions { Method = AdapterMethod.SingLora, Rank = 2, Alpha = 2 }, InjectionTargets.TextEncoderAttention, "text_encoder");
        Assert.Equal(8, report.Layers.Count);
        Assert.All(report.Layers, l => Assert.Matches(@"^text_model\.encoder\.layers\.[01]\.self_attn\.(q|k|v|out)_proj$", l.Path));
        Assert.Equal(new[] { "self_attn.k_proj", "self_attn.out_proj", "self_attn.q_proj", "self_attn.v_proj" }, report.ByKind.Keys);
        Assert.Equal(8L * 16, report.TrainableParameters);          // r · max(d_in, d_out) = 2 · 8

        var mlp = AdapterInjector.Inject(te, new AdapterOptions { Rank = 2, Alpha = 2 }, InjectionTargets.Of("glob:**.mlp.fc*"), "text_encoder");
        Assert.Equal(4, mlp.Layers.Count);
        // a second adapter on already adapted layers is stacked under its name
        var second = AdapterInjector.Inject(te, new AdapterOptions { Rank = 1, Alpha = 1 }, InjectionTargets.Of(@"q_proj$"), "text_encoder", "extra");
        Assert.Equal(2, second.Layers.Count);
        Assert.Contains("text_model.encoder.layers.0.self_attn.q_proj.extra.lora_A", te.state_dict().Keys);
        TensorAssert.Close(te.forward(x), before, 1e-14, 0, "u(0) = 0, B = 0: unchanged");

        foreach (var (path, _) in AdapterInjector.AdaptedLayers(te)) AdapterInjector.Remove(te, path);
        Assert.Equal(keysBefore, te.state_dict().Keys.ToHashSet());
        Assert.All(te.named_modules().Where(m => m.name.EndsWith("_proj") || m.name.Contains("fc")), m => Assert.IsType<Linear>(m.module));
        TensorAssert.Close(te.forward(x), before, 0, 0, "after removal");
    }

    /// <summary>Module.to(dtype) after injection (stacked adapters, SDS caches, the int64 ramp buffer); injection inside a dispose scope.</summary>
    [Fact]
    public void ConvertsDtypeAndOutlivesDisposeScopes()
    {
        var te = new FakeTextEncoder();
        using (NewDisposeScope())
        {
            AdapterInjector.Inject(te, new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = 2, Alpha = 2 }, InjectionTargets.TextEncoderAttention);
            AdapterInjector.Inject(te, new AdapterOptions { Method = AdapterMethod.SingLora, Rank = 2, Alpha = 2 }, InjectionTargets.Of("fc1$"));
            AdapterInjector.Inject(te, new AdapterOptions { Rank = 1, Alpha = 1 }, InjectionTargets.Of("q_proj$"), adapterName: "extra");
        }
        using var scope = NewDisposeScope();
        var x = randn([2, 3, 8], ScalarType.Float64);
        foreach (var (_, l) in AdapterInjector.AdaptedLayers(te)) foreach (var a in l.Adapters) Perturb(a);
        te.forward(x).sum().backward();                       // SDS bases cached in float64
        var expected = te.forward(x).detach();
        var keys = te.state_dict().Keys.ToHashSet();
        te.to(ScalarType.Float32);
        Assert.Equal(keys, te.state_dict().Keys.ToHashSet());
        Assert.All(te.named_parameters(), p => Assert.Equal(ScalarType.Float32, p.parameter.dtype));
        Assert.Equal(ScalarType.Int64, te.state_dict()["text_model.encoder.layers.0.mlp.fc1.singlora_step"].dtype);
        var q = (AdapterLayer)AdapterInjector.Find(te, "text_model.encoder.layers.0.self_attn.q_proj")!;
        Assert.Same(q.weight, q.FindAdapter("extra")!.weight);
        var y = te.forward(x.to_type(ScalarType.Float32));
        y.sum().backward();
        TensorAssert.Close(y, expected, 1e-4, 1e-4, "float32 copy");
        Assert.All(AdapterInjector.AdaptedLayers(te).SelectMany(l => l.Layer.Adapters).SelectMany(a => a.AdapterParameters()),
            p => Assert.True(p.Tensor.grad is not null && p.Tensor.grad.dtype == ScalarType.Float32, p.Name));
    }

    private sealed class HoldsSequential : nn.Module<Tensor, Tensor>
    {
        public Sequential seq = nn.Sequential(nn.Linear(4, 4));
        public HoldsSequential() : base(nameof(HoldsSequential)) => RegisterComponents();
        public override Tensor forward(Tensor x) => seq.forward(x);
    }

    [Fact]
    public void ClearErrorsForUnpatchableOrUnmatchedTargets()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => AdapterInjector.Inject(new HoldsSequential(), new AdapterOptions(), InjectionTargets.Of(@"^seq\.0$")));
        Assert.Contains("seq.0", ex.Message);
        var ex2 = Assert.Throws<ArgumentException>(() => AdapterInjector.Inject(new FakeTextEncoder(), new AdapterOptions(), InjectionTargets.UNetAttention, "text_encoder"));
        Assert.Contains("no Linear layer", ex2.Message);
        Assert.Equal("attn2.to_out.0", AdapterInjector.KindOf("up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0"));
        Assert.Equal("self_attn.q_proj", AdapterInjector.KindOf("text_model.encoder.layers.11.self_attn.q_proj"));
    }

    [Fact]
    public void LoraPlusGroupsAndLearningRates()
    {
        using var scope = NewDisposeScope();
        var unet = new FakeUNet();
        var report = AdapterInjector.Inject(unet, new AdapterOptions { Method = AdapterMethod.Dora, Rank = 2, Alpha = 2 }, InjectionTargets.UNetAttention);
        var (a, b) = LoraPlus.Groups(report.Layers.Select(l => l.Layer));
        Assert.Equal(40, a.Count);
        Assert.Equal(80, b.Count);                                        // B and the magnitude vectors
        Assert.All(a, p => Assert.Equal(2, p.dim()));
        var opt = LoraPlus.CreateAdamW(report.Layers.Select(l => l.Layer), new AdamWSettings(1e-4, WeightDecay: 0.02));
        var groups = opt.ParamGroups.ToList();
        Assert.Equal(2, groups.Count);
        Assert.Equal(1e-4, groups[0].LearningRate, 12);
        Assert.Equal(16e-4, groups[1].LearningRate, 12);
        // one step with λ = 16: B moves 16x as far as it would at lr_A (Adam's first step is ±lr per element)
        var x = randn([2, 3, 8], ScalarType.Float64);
        foreach (var l in report.Layers) Perturb(l.Layer);
        var bBefore = b[0].detach().clone();
        unet.forward(x).square().sum().backward();
        opt.step();
        var moved = (b[0].detach() - bBefore).abs();
        var decay = bBefore.abs() * 16e-4 * 0.02;
        Assert.True(((moved - 16e-4).abs() <= decay + 1e-9).all().item<bool>(), "B's first AdamW step is lr_B = 16 lr_A (plus decoupled decay)");
    }
}
