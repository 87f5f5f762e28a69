using DiffusionPeft.Adapters;
using DiffusionPeft.DreamBooth.Config;

namespace DiffusionPeft.Tests.DreamBooth;

public sealed class TrainConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-cfg-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static TrainConfig Minimal => new() { Model = "models/sd15", Images = "data/dog", Prompt = "a photo of sks dog", Out = "runs/dog" };

    /// <summary>A config that differs from the defaults in every option, with strings YAML likes to reinterpret.</summary>
    private static TrainConfig Everything => new()
    {
        Model = "m.safetensors", ConfigsFrom = "sd15-folder", Tokenizer = "tok", Images = "imgs: x # not a comment", Prompt = "yes", Out = "null", Method = AdapterMethod.SingLora,
        Rank = 16, Alpha = 8.5, Steps = 1234, Lr = 3.5e-5, TextEncoderLr = 1e-6, Batch = 3, GradAccumulation = 4, Resolution = 768,
        Crop = CropMode.Random, Flip = true, Buckets = true, Seed = -42, CheckpointEvery = 7, Keep = 0, Resume = "latest",
        ClassPrompt = "a photo of dog", ClassImages = "class/dog", NumClassImages = 200, PriorWeight = 0.5,
        ValidationPrompts = new EquatableList<string>(["a sks dog on the beach", "'quoted' \"double\""]), ValidateEvery = 50,
        ValidationSeeds = new EquatableList<long>([1, 2, 9_000_000_000]), LrScheduler = LrScheduleKind.CosineWithRestarts,
        LrWarmupSteps = 11, LrNumCycles = 3, LrPower = 2.5, LrEnd = 1e-9, SnrGamma = 5, EmaDecay = 0.9995, MaskedLoss = true, UnmaskedWeight = 0.15, NoiseOffset = 0.0357, WeightDecay = 0.1,
        TimestepSampling = TimestepSampling.LogitNormal, LogitMean = 0.25, LogitStd = 1.5,
        AdamBeta1 = 0.8, AdamBeta2 = 0.95, AdamEpsilon = 1e-6, MaxGradNorm = 0, LoraPlusRatio = 4, SingLoraRampSteps = 77,
        SingLoraInitScale = 0.25, SdsBasis = DiffusionPeft.Adapters.SdsBasis.Qr, TrainTextEncoder = true, DType = "bf16", Device = "cuda:1", CacheLatents = LatentCacheMode.None,
        GradientCheckpointing = true, PlotEvery = 3, Mode = TrainingMode.Full, CaptionDropout = 0.1, SaveDType = SaveDType.Bf16, WhitenConditioning = true, WhitenStrength = 0.5,
    };

    [Fact]
    public void EveryOptionIsNonDefaultInTheRoundTripFixture()
    {
        var defaults = new TrainConfig();
        var same = TrainConfigYaml.Options.Where(o => Equals(o.Property.GetValue(defaults), o.Property.GetValue(Everything))).Select(o => o.Key).ToArray();
        Assert.Empty(same);
        Assert.Equal(62, TrainConfigYaml.Options.Count);
    }

    [Fact]
    public void YamlRoundTripsEveryOption()
    {
        var path = Path.Combine(_dir, "run.yaml");
        TrainConfigYaml.Save(Everything, path);
        // Not validated: buckets with prior preservation is refused by validation, but every option must be non-default here.
        var loaded = TrainConfigYaml.Load(path, validate: false);
        Assert.Equal(Everything, loaded);
        Assert.Equal(TrainConfigYaml.Serialize(Everything), File.ReadAllText(path));
        Assert.Contains("method: singlora", File.ReadAllText(path));
        Assert.Contains("lr-scheduler: cosine_with_restarts", File.ReadAllText(path));
        // Defaults (nulls, empty lists) round-trip too.
        TrainConfigYaml.Save(Minimal, path);
        Assert.Equal(Minimal, TrainConfigYaml.Load(path));
    }

    [Fact]
    public void CommandLineOverridesTheFile()
    {
        var path = Path.Combine(_dir, "run.yaml");
        File.WriteAllText(path, """
            model: m
            images: i
            prompt: a photo of sks dog
            out: o
            steps: 100
            lr: 1e-4
            validation-prompt: [a, b]
            lr_scheduler: cosine
            """);
        var config = TrainConfigYaml.Resolve(path, [
            new("--steps", "300"), new("--validation-prompt", "c"), new("--validation-prompt", "d"), new("flip", ""),
            new("--lr-scheduler", "constant-with-warmup"), new("--steps", "400"),
        ]);
        Assert.Equal(400, config.Steps); // last value wins
        Assert.Equal(1e-4, config.Lr);   // from the file
        Assert.Equal(new EquatableList<string>(["c", "d"]), config.ValidationPrompts); // the command line replaces the file's list
        Assert.True(config.Flip);
        Assert.Equal(LrScheduleKind.ConstantWithWarmup, config.LrScheduler);
        Assert.Equal("a photo of sks dog", config.Prompt);
    }

    [Fact]
    public void UnknownKeyNamesTheFileLineAndKey()
    {
        var path = Path.Combine(_dir, "bad.yaml");
        File.WriteAllText(path, "model: m\nsteps: 10\nlearning-rate: 1e-4\n");
        var ex = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Load(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("line 3", ex.Message);
        Assert.Contains("unknown key 'learning-rate'", ex.Message);

        var flag = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.ApplyOverrides(Minimal, [new("--setps", "3")]));
        Assert.Contains("--setps", flag.Message);
        Assert.Contains("did you mean 'steps'", flag.Message);
    }

    [Theory]
    [InlineData("steps: ten", "'steps' expects an integer, got 'ten'")]
    [InlineData("lr: fast", "'lr' expects a finite number, got 'fast'")]
    [InlineData("flip: maybe", "'flip' expects true or false")]
    [InlineData("method: lokr", "'method' expects one of lora|rslora|dora|loraplus|singlora|sdslora, got 'lokr'")]
    [InlineData("steps: [1, 2]", "'steps' takes one value")]
    [InlineData("steps: 1\nsteps: 2", "Duplicate key")]
    [InlineData("model: [unclosed", "invalid YAML")]
    public void BadValuesNameTheFileAndKey(string yaml, string expected)
    {
        var path = Path.Combine(_dir, "v.yaml");
        File.WriteAllText(path, yaml);
        var ex = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Load(path, validate: false));
        Assert.Contains(path, ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void ValidationListsEveryFault()
    {
        var bad = Minimal with { Rank = 0, Resolution = 500, ClassPrompt = "a dog", Lr = -1, LrScheduler = LrScheduleKind.Polynomial, LrEnd = 1, DType = "fp8", LogitStd = 0 };
        var ex = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(bad, "run.yaml"));
        Assert.StartsWith("run.yaml: invalid training configuration", ex.Message);
        foreach (var part in new[] { "--rank: must be >= 1, got 0", "--resolution: must be a multiple of 8", "--class-images: prior preservation needs both",
                                     "--lr: must be > 0, got -1", "--lr-end:", "--dtype 'fp8': expected fp32 or bf16", "--logit-std: must be > 0, got 0" })
            Assert.Contains(part, ex.Message);

        var missing = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(new TrainConfig()));
        Assert.Contains("--model: required", missing.Message);
        Assert.Contains("--out: required", missing.Message);
        Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Validate(Minimal with { Crop = CropMode.Random }));
        TrainConfigYaml.Validate(Minimal with { Crop = CropMode.Random, CacheLatents = LatentCacheMode.None });
    }

    [Fact]
    public void TrainingHashIgnoresResumeNeutralOptions()
    {
        var a = Minimal;
        Assert.Equal(TrainConfigYaml.TrainingHash(a), TrainConfigYaml.TrainingHash(a with { Steps = 9999, Out = "elsewhere", Resume = "latest", Keep = 1 }));
        Assert.NotEqual(TrainConfigYaml.TrainingHash(a), TrainConfigYaml.TrainingHash(a with { Lr = 2e-4 }));
        Assert.Equal(new[] { "lr", "seed" }, TrainConfigYaml.TrainingDifferences(a, a with { Lr = 2e-4, Seed = 5, Steps = 3 }));
    }

    /// <summary>Another method's settings, or an adapter's in full fine-tuning, cannot change a run: a new default there must not block a resume.</summary>
    [Fact]
    public void SettingsARunDoesNotUseAreNeitherHashedNorDifferences()
    {
        var lora = Minimal with { Method = AdapterMethod.Lora };
        var other = lora with { SingLoraInitScale = 1, SingLoraRampSteps = 100, SdsBasis = SdsBasis.Qr, LoraPlusRatio = 4 };
        Assert.Equal(TrainConfigYaml.TrainingHash(lora), TrainConfigYaml.TrainingHash(other));
        Assert.Empty(TrainConfigYaml.TrainingDifferences(lora, other));

        var sing = lora with { Method = AdapterMethod.SingLora };
        Assert.Equal(new[] { "singlora-ramp-steps", "singlora-init-scale" }, TrainConfigYaml.TrainingDifferences(sing, sing with { SingLoraInitScale = 1, SingLoraRampSteps = 100, SdsBasis = SdsBasis.Qr }));
        var sds = lora with { Method = AdapterMethod.SdsLora };
        Assert.Equal(new[] { "sds-basis" }, TrainConfigYaml.TrainingDifferences(sds, sds with { SdsBasis = SdsBasis.Qr, SingLoraInitScale = 1 }));

        var full = lora with { Mode = TrainingMode.Full };
        Assert.Empty(TrainConfigYaml.TrainingDifferences(full, full with { Rank = 16, Alpha = 3, Method = AdapterMethod.Dora }));
        Assert.Equal(new[] { "lr" }, TrainConfigYaml.TrainingDifferences(full, full with { Lr = 1 }));
        Assert.Empty(TrainConfigYaml.TrainingDifferences(full, full with { WhitenStrength = 0.5 }));   // no whitening: its strength is unused
        var whitened = full with { WhitenConditioning = true };
        Assert.Equal(new[] { "whiten-strength" }, TrainConfigYaml.TrainingDifferences(whitened, whitened with { WhitenStrength = 0.5 }));
        Assert.Equal(new[] { "method" }, TrainConfigYaml.TrainingDifferences(lora, sing));
    }

    /// <summary>Configs written before --dtype was the one switch carry diffusers' mixed-precision key: bf16 means --dtype bf16.</summary>
    [Fact]
    public void LegacyMixedPrecisionKeyMapsToDType()
    {
        Assert.Equal("bf16", TrainConfigYaml.Parse("mixed-precision: bf16\n", "old.yaml", Minimal).DType);
        Assert.Equal(Minimal.DType, TrainConfigYaml.Parse("mixed-precision: \"no\"\n", "old.yaml", Minimal).DType);
        Assert.Equal("bf16", TrainConfigYaml.ApplyOverrides(Minimal, [new("mixed-precision", "bf16")]).DType);
        var ex = Assert.Throws<TrainConfigException>(() => TrainConfigYaml.Parse("mixed-precision: fp8\n", "old.yaml", Minimal));
        Assert.Contains("old.yaml, line 1", ex.Message);
    }

    /// <summary>Enum values parse by their config names, '-' for '_', any case, as the YAML and every command-line enum read them.</summary>
    [Fact]
    public void EnumsParseByTheirConfigNames()
    {
        Assert.Equal(TimestepSampling.LogitNormal, TrainConfigYaml.ParseEnum<TimestepSampling>("logit-normal"));
        Assert.Equal(TimestepSampling.Uniform, TrainConfigYaml.ParseEnum<TimestepSampling>(" Uniform "));
        Assert.Equal(AdapterMethod.SingLora, TrainConfigYaml.ParseEnum<AdapterMethod>("singlora"));
        Assert.Null(TrainConfigYaml.ParseEnum<AdapterMethod>("sing_lora"));
        Assert.Equal("lora|rslora|dora|loraplus|singlora|sdslora", TrainConfigYaml.EnumNames(typeof(AdapterMethod)));
    }
}
