using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.DreamBooth;
using DiffusionPeft.DreamBooth.Checkpoints;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Training;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>--whiten-conditioning: the UNet trains on whitened text states and is written to read them unwhitened.</summary>
public sealed class ConditioningWhiteningTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-whiten-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>States of one caption: [1, 6, 8] from a fixed anisotropic basis (scales 1e-2 … 10), seeded by the caption.</summary>
    private static Tensor States(string caption)
    {
        var g = new Generator((ulong)caption.Length * 7919 + (ulong)caption.Sum(c => c));
        var basis = linalg.qr(randn(8, 8, generator: new Generator(3))).Q;
        var scales = tensor(new float[] { 10, 5, 2, 1, 0.5f, 0.2f, 0.05f, 0.01f });
        return (randn(1, 6, 8, generator: g) * scales).matmul(basis.t());
    }

    private static Tensor Encode(IReadOnlyList<string> captions) => cat(captions.Select(States).ToArray(), 0);

    [Fact]
    public void TheWhitenedStatesHaveTheIdentityAsSecondMomentUpToTheFloor()
    {
        var captions = Enumerable.Range(0, 400).Select(i => $"caption {i}").ToList();
        using var whitening = ConditioningWhitening.Compute(captions, Encode, CPU);
        var p = whitening.Matrix;
        Assert.True((p - p.t()).abs().max().item<float>() < 1e-5f, "P is symmetric");
        using var x = Encode(captions).reshape(-1, 8);
        using var w = whitening.Apply(x);
        var moment = w.t().matmul(w) / x.shape[0];
        // Each direction's second moment becomes λ / (λ + floor), the floor 1e-4 of the largest λ (100): about 1 for the
        // five strongest (100 … 0.25), 0.8, 0.2 and 0.01 for the three faintest (0.04, 0.0025, 1e-4).
        var values = linalg.eigvalsh(moment);
        Assert.InRange(values.max().item<float>(), 0.98f, 1.02f);
        Assert.Equal(5, values.gt(0.9f).sum().item<long>());
        Assert.InRange(values.min().item<float>(), 0.002f, 0.05f);
        // Words that differ only along a faint direction: 1% of the states' size before, comparable after.
        using var a = x[0]; using var b = a + 0.05f * linalg.qr(randn(8, 8, generator: new Generator(3))).Q[.., 6];
        float before = ((a - b).norm() / a.norm()).item<float>(), after = ((whitening.Apply(a) - whitening.Apply(b)).norm() / whitening.Apply(a).norm()).item<float>();
        Assert.True(after > 10 * before, $"a faint difference {before} → {after}");

        // bf16 states (mixed precision) are whitened by the fp32 P the model is written with, then rounded once.
        using var half = x.to(ScalarType.BFloat16);
        using var whiteHalf = whitening.Apply(half);
        Assert.Equal(ScalarType.BFloat16, whiteHalf.dtype);
        using var exact = half.to(ScalarType.Float32).matmul(p).to(ScalarType.BFloat16);
        Assert.True(whiteHalf.eq(exact).all().item<bool>(), "the product is taken in fp32");
    }

    [Fact]
    public void HalfStrengthIsTheSquareRootOfTheFullWhiteningAndHalvesTheLogSpectrum()
    {
        var captions = Enumerable.Range(0, 400).Select(i => $"caption {i}").ToList();
        using var moment = ConditioningWhitening.SecondMoment(captions, Encode);
        using var full = ConditioningWhitening.FromMoment(moment, CPU);
        using var half = ConditioningWhitening.FromMoment(moment, CPU, strength: 0.5);
        using var squared = half.Matrix.matmul(half.Matrix);
        Assert.True((squared - full.Matrix).abs().max().item<float>() < 1e-3f * full.Matrix.abs().max().item<float>(), "P(½)² = P(1)");
        // Each direction's second moment λ becomes λ / √(λ + floor): the strongest (100) 10, the 0.25 one about 0.5.
        using var x = Encode(captions).reshape(-1, 8);
        using var w = half.Apply(x);
        using var values = linalg.eigvalsh(w.t().matmul(w) / x.shape[0]);
        using var before = linalg.eigvalsh(x.t().matmul(x) / x.shape[0]);
        Assert.InRange(values.max().item<float>(), 9.5f, 10.5f);
        double spread = Math.Log(values.max().item<float>() / values[3].item<float>()), spreadBefore = Math.Log(before.max().item<float>() / before[3].item<float>());
        Assert.InRange(spread / spreadBefore, 0.45, 0.55);
        foreach (var bad in new[] { 0.0, -0.5, 1.5, double.NaN })
            Assert.Throws<ArgumentOutOfRangeException>(() => ConditioningWhitening.FromMoment(moment, CPU, bad));
    }

    [Fact]
    public void ARunKeepsItsWhiteningAndReadsItBackExactly()
    {
        string[] captions = ["a", "bb", "ccc", ""];
        var first = ConditioningWhitening.LoadOrCompute(_dir, captions, Encode, CPU);
        var file = Path.Combine(_dir, ConditioningWhitening.FileName);
        Assert.True(File.Exists(file));
        using var again = ConditioningWhitening.LoadOrCompute(_dir, captions, _ => throw new InvalidOperationException("read, not computed"), CPU);
        Assert.True(first.Matrix.eq(again.Matrix).all().item<bool>(), "a resume reads the run's own whitening, not a new one");
        var changed = Assert.Throws<InvalidDataException>(() => ConditioningWhitening.LoadOrCompute(_dir, ["other captions entirely"], Encode, CPU));
        Assert.Contains(file, changed.Message);
        Assert.Contains("computed from other captions", changed.Message);
        var wrongWidth = Assert.Throws<InvalidDataException>(() => ConditioningWhitening.LoadOrCompute(_dir, ["a"], Encode, CPU, width: 16));
        Assert.Contains("8×8 whitening for a text encoder of width 16", wrongWidth.Message);
        var otherStrength = Assert.Throws<InvalidDataException>(() => ConditioningWhitening.LoadOrCompute(_dir, captions, Encode, CPU, strength: 0.5));
        Assert.Contains(file, otherStrength.Message);
        Assert.Contains("strength 1, and this run asks for 0.5", otherStrength.Message);
        first.Dispose();
        // A file written before the strength was kept holds none: it is full whitening, read back at 1 and refused at 0.5.
        using (var moment = ConditioningWhitening.SecondMoment(captions, Encode))
        using (var full = ConditioningWhitening.FromMoment(moment, CPU))
        using (var cpu = full.Matrix.cpu())
            DiffusionPeft.Diffusion.IO.SafetensorsWriter.Write(file, new Dictionary<string, Tensor> { ["whitening"] = cpu });
        using (var old = ConditioningWhitening.LoadOrCompute(_dir, captions, _ => throw new InvalidOperationException("read, not computed"), CPU))
            Assert.True(old.Matrix.eq(again.Matrix).all().item<bool>());
        var oldAtHalf = Assert.Throws<InvalidDataException>(() => ConditioningWhitening.LoadOrCompute(_dir, captions, Encode, CPU, strength: 0.5));
        Assert.Contains("strength 1, and this run asks for 0.5", oldAtHalf.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ConditioningWhitening.LoadOrCompute(_dir, captions, Encode, CPU, strength: double.NaN));
        // A part-way whitening is kept with its strength and read back by a run that asks for the same.
        var partDir = Path.Combine(_dir, "part");
        using (var part = ConditioningWhitening.LoadOrCompute(partDir, captions, Encode, CPU, strength: 0.3))
        using (var partAgain = ConditioningWhitening.LoadOrCompute(partDir, captions, _ => throw new InvalidOperationException("read, not computed"), CPU, strength: 0.3))
        {
            Assert.True(part.Matrix.eq(partAgain.Matrix).all().item<bool>());
            Assert.False(part.Matrix.allclose(again.Matrix, rtol: 1e-2, atol: 1e-3), "0.3 is not the full whitening");
        }
        File.WriteAllBytes(file, [1, 2, 3]);
        var error = Assert.ThrowsAny<Exception>(() => ConditioningWhitening.LoadOrCompute(_dir, ["a"], Encode, CPU));
        Assert.Contains(file, error.Message);
    }

    private string Images() => CaptionedSquares.Write(Path.Combine(_dir, "images"));

    private TrainConfig Config(string images) => new()
    {
        Model = EmbeddedDefaultModel.UntrainedKeyword, Images = images, Out = Path.Combine(_dir, "run"), Mode = TrainingMode.Full, Resolution = 64,
        Steps = 6, Lr = 1e-3, Batch = 2, Seed = 5, CheckpointEvery = 3, Keep = 0, CaptionDropout = 0.25, SaveDType = SaveDType.Fp32, PlotEvery = 100,
        WhitenConditioning = true, DType = "fp32", ValidateEvery = 6, ValidationPrompts = new(["a red square on the left"]),
    };

    [Fact]
    public void TheWrittenUNetReadsTheTextEncoderAsItIsWhatTheTrainedOneReadWhitened()
    {
        var config = Config(Images());
        using var model = EmbeddedDefaultModel.CreateUntrained();
        var run = new DreamBoothRun(config, progress: new RecordingProgress());
        var result = run.Train(model);
        Assert.Equal(6, result.Steps);
        Assert.True(File.Exists(Path.Combine(config.Out, "validation", "step-000006", "p0-s5.png")), "validation drew with the whitening folded in");

        using var whitening = ConditioningWhitening.Read(Path.Combine(config.Out, ConditioningWhitening.FileName), CPU);
        using var written = StableDiffusionLoader.Load(Path.Combine(config.Out, FullFineTuneTarget.ModelFolder));
        using var sample = randn(2, 4, 8, 8, generator: new Generator(1));
        using var t = tensor(new long[] { 10, 700 });
        using var ids = tensor(model.Tokenizer.EncodeForModel("a red square on the left").InputIds).unsqueeze(0).expand(2, -1);
        using var _ = no_grad();
        using var states = model.TextEncoder.forward(ids);
        // The model trained in place holds the whitened-space weights; validation's fold was undone bit for bit, so its
        // output on whitened states is the written model's on the text encoder's own.
        using var trained = model.Unet.forward(sample, t, whitening.Apply(states));
        using var read = written.Unet.forward(sample, t, written.TextEncoder.forward(ids));
        Assert.True((trained - read).abs().max().item<float>() < 1e-4f, $"max difference {(trained - read).abs().max().item<float>()}");
        using var unwhitened = model.Unet.forward(sample, t, states);
        Assert.True((unwhitened - read).abs().max().item<float>() > 1e-3f, "the fold changes what the weights read");
        // Only the key and value projections that read the caption differ between the trained and the written UNet.
        var projections = ConditioningWhitening.ContextProjections(model.Unet).Select(p => p.Name + ".weight").ToHashSet();
        Assert.NotEmpty(projections);
        foreach (var (key, value) in model.Unet.state_dict())
        {
            bool same = written.Unet.state_dict()[key].eq(value).all().item<bool>();
            Assert.True(same != projections.Contains(key), $"{key}: {(same ? "unchanged" : "changed")}");
        }
    }

    [Fact]
    public void ItIsRefusedWhereTheStatesAreNotAFixedInputOfTheUNet()
    {
        var config = Config("images");
        var adapters = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(config with { Mode = TrainingMode.Adapter }));
        Assert.Contains("--whiten-conditioning", adapters.Message);
        var textEncoder = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(config with { TrainTextEncoder = true }));
        Assert.Contains("--whiten-conditioning", textEncoder.Message);
        TrainConfigYaml.Validate(config);
        TrainConfigYaml.Validate(config with { WhitenStrength = 0.5 });
        var unused = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(config with { WhitenConditioning = false, WhitenStrength = 0.5 }));
        Assert.Contains("--whiten-strength: is for --whiten-conditioning", unused.Message);
        var strength = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(config with { WhitenStrength = 0 }));
        Assert.Contains("--whiten-strength: must be in (0, 1], got 0", strength.Message);
        using var unet = new UNet2DConditionModel(DiffusionPeft.ToyModel.ToyModelConfigs.Unet(64, 16, 16, textEmbedding: true));
        var pooled = Assert.Throws<NotSupportedException>(() => ConditioningWhitening.ContextProjections(unet));
        Assert.Contains("addition_embed_type", pooled.Message);
    }
}
