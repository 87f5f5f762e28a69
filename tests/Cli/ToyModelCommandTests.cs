using DiffusionPeft.Cli;

namespace DiffusionPeft.Tests.Cli;

/// <summary>`dpeft toy-model train` and `evaluate` refuse bad settings before they write anything.</summary>
public sealed class ToyModelCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-toycli-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData("--clip-steps", "0", "--clip-steps takes step counts of at least 1, increasing, separated by commas (got 0)")]
    [InlineData("--vae-steps", "3500,2000", "--vae-steps takes step counts of at least 1, increasing, separated by commas (got 3500,2000)")]
    [InlineData("--vae-steps", "2000,", "--vae-steps takes step counts of at least 1, increasing, separated by commas (got 2000,)")]
    [InlineData("--unet-steps", "-3", "--unet-steps takes step counts of at least 1, increasing, separated by commas (got -3)")]
    [InlineData("--unet-snr-gamma", "0", "--unet-snr-gamma takes a positive number or none (got 0)")]
    [InlineData("--unet-snr-gamma", "off", "--unet-snr-gamma takes a positive number or none (got off)")]
    [InlineData("--unet-ema-decay", "1", "--unet-ema-decay takes a number in (0, 1) or none (got 1)")]
    [InlineData("--unet-ema-decay", "off", "--unet-ema-decay takes a number in (0, 1) or none (got off)")]
    [InlineData("--unet-masked-loss", "1.5", "--unet-masked-loss takes the background's weight in [0, 1] or none (got 1.5)")]
    [InlineData("--unet-masked-loss", "yes", "--unet-masked-loss takes the background's weight in [0, 1] or none (got yes)")]
    [InlineData("--unet-lr", "0", "--unet-lr takes a positive learning rate (got 0)")]
    [InlineData("--unet-lr", "fast", "--unet-lr takes a positive learning rate (got fast)")]
    [InlineData("--unet-batch", "0", "--unet-batch takes a batch of at least 1 (got 0)")]
    [InlineData("--checkpoint-every", "0", "--checkpoint-every takes a step count of at least 1 (got 0)")]
    [InlineData("--validate-every", "-1", "--validate-every takes a step count, or 0 for none (got -1)")]
    [InlineData("--unet-timestep-sampling", "beta", "--unet-timestep-sampling takes uniform|logit_normal (got beta)")]
    [InlineData("--unet-width", "24", "--unet-width takes a positive multiple of 16 (got 24)")]
    [InlineData("--unet-width", "0", "--unet-width takes a positive multiple of 16 (got 0)")]
    [InlineData("--latent-size", "8", "--latent-size takes 16 or 32 (got 8)")]
    [InlineData("--unet-plain-sizes", "huge", "--unet-plain-sizes takes small, medium and/or large, separated by commas (got huge)")]
    [InlineData("--unet-plain-sizes", "small,,large", "--unet-plain-sizes takes small, medium and/or large, separated by commas (got small,,large)")]
    [InlineData("--vae-dtype", "fp16", "--vae-dtype takes fp32 or bf16 (got fp16)")]
    [InlineData("--default-cfg", "-1", "--default-cfg takes a guidance scale >= 0 (got -1)")]
    [InlineData("--default-cfg", "high", "--default-cfg takes a guidance scale >= 0 (got high)")]
    [InlineData("--unet-steps", "6000,6000", "--unet-steps takes step counts of at least 1, increasing, separated by commas (got 6000,6000)")]
    public void BadSettingsAreRefusedWithTheFlagAndNothingIsWritten(string flag, string value, string message) =>
        TrainIsRefused([flag, value], message);

    [Theory]
    [InlineData("full", "--unet-top-attention is for 32×32 latents")]
    [InlineData("cross-only", "--unet-top-attention is for 32×32 latents")]
    [InlineData("everywhere", "--unet-top-attention takes none|full|cross_only (got everywhere)")]
    public void TopLevelAttentionOn16LatentsOrUnknownIsRefusedBeforeAnythingIsWritten(string value, string message) =>
        TrainIsRefused(["--unet-top-attention", value], message);

    [Fact]
    public void AWhiteningStrengthWithWhiteningTurnedOffIsRefusedBeforeAnythingIsWritten() =>
        TrainIsRefused(["--unet-whiten-conditioning", "false", "--unet-whiten-strength", "0.5"], "--unet-whiten-strength is for --unet-whiten-conditioning");

    /// <summary>
    /// Whitening is on unless --unet-whiten-conditioning false says otherwise: the text embedding, which needs it off, is
    /// refused without that flag and with a bare flag, before anything is written.
    /// </summary>
    [Theory]
    [InlineData("")]
    [InlineData("--unet-whiten-conditioning")]
    [InlineData("--unet-whiten-conditioning true")]
    public void WhiteningIsOnByDefaultSoTheTextEmbeddingAloneIsRefused(string whitening) =>
        TrainIsRefused(["--unet-text-embedding", .. whitening.Split(' ', StringSplitOptions.RemoveEmptyEntries)], "--unet-whiten-conditioning false for the text embedding");

    [Theory]
    [InlineData("0")]
    [InlineData("1.5")]
    [InlineData("half")]
    public void AWhiteningStrengthOutsideZeroToOneIsRefusedBeforeAnythingIsWritten(string value) =>
        TrainIsRefused(["--unet-whiten-conditioning", "--unet-whiten-strength", value], $"--unet-whiten-strength takes a number in (0, 1] (got {value})");

    [Fact]
    public void AUnetDTypeOtherThanFp32OrBf16IsRefusedBeforeAnythingIsWritten() =>
        TrainIsRefused(["--unet-dtype", "fp16"], "--unet-dtype takes fp32, bf16 or auto (got fp16)");

    [Theory]
    [InlineData("--classifier-scenes", "-1", "--classifier-scenes takes 0 (off) or a number of scenes (got -1)")]
    [InlineData("--split", "validation", "--split takes held-out or train (got validation)")]
    [InlineData("--first-scene", "-1", "--first-scene -1 with --scenes 200 and --classifier-scenes 96 does not fit the split's")]
    [InlineData("--first-scene", "1073741700", "--first-scene 1073741700 with --scenes 200 and --classifier-scenes 96 does not fit the split's 1073741824 scenes")]
    [InlineData("--scenes", "-1", "--scenes takes 0 (the diffusion classifier alone) or a number of scenes (got -1)")]
    [InlineData("--cfg", "-3", "toy-model evaluate: cfg must be a finite number >= 0 (got -3)")]
    [InlineData("--cfg", "NaN", "toy-model evaluate: cfg must be a finite number >= 0 (got NaN)")]
    [InlineData("--cfg-rescale", "2", "toy-model evaluate: cfg-rescale must be in [0, 1] (got 2)")]
    [InlineData("--steps", "0", "toy-model evaluate: steps must be in 1..1000 (got 0)")]
    public void ABadEvaluateOptionIsRefusedBeforeAnythingIsWritten(string option, string value, string message) => EvaluateIsRefused([option, value], message);

    [Fact]
    public void AFirstSceneTheClassifiersScenesRunPastIsRefusedToo() =>
        EvaluateIsRefused(["--scenes", "1", "--classifier-scenes", "96", "--first-scene", "1073741800"], "--classifier-scenes 96 does not fit the split's 1073741824 scenes");

    /// <summary>The miniature recipe with <paramref name="options"/> exits 2 with <paramref name="message"/> and writes nothing.</summary>
    private void TrainIsRefused(string[] options, string message)
    {
        var run = Path.Combine(_dir, "run");
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(["toy-model", "train", "--out", run, "--miniature", "--quiet", .. options], o, e);
        Assert.Equal(2, code);
        Assert.Contains(message, e.ToString());
        Assert.False(Directory.Exists(run));
    }

    private void EvaluateIsRefused(string[] options, string message)
    {
        var outDir = Path.Combine(_dir, "eval");
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(["toy-model", "evaluate", "--out", outDir, .. options], o, e);
        Assert.Equal(2, code);
        Assert.Contains(message, e.ToString());
        Assert.False(Directory.Exists(outDir));
    }
}
