using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Schedulers;

public sealed class SchedulerTests
{
    private static readonly SchedulerConfig Sd = new()
    {
        BetaStart = 0.00085, BetaEnd = 0.012, BetaSchedule = BetaSchedule.ScaledLinear, StepsOffset = 1,
        SetAlphaToOne = false, ClipSample = false, SkipPrkSteps = true,
    };

    [Fact]
    public void UnknownSchedulerNameListsTheValidNames()
    {
        var ex = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("heun_typo", Sd));
        Assert.Contains("heun_typo", ex.Message);
        foreach (var name in new[] { "ddpm", "ddim", "pndm", "lms", "euler", "euler_a", "dpm++2m", "dpm++2m_karras" })
            Assert.Contains(name, ex.Message);
    }

    [Theory]
    [InlineData("ddpm", typeof(DdpmScheduler))]
    [InlineData("DDIM", typeof(DdimScheduler))]
    [InlineData("pndm", typeof(PndmScheduler))]
    [InlineData("lms", typeof(LmsDiscreteScheduler))]
    [InlineData("euler", typeof(EulerDiscreteScheduler))]
    [InlineData("euler_a", typeof(EulerAncestralDiscreteScheduler))]
    [InlineData("dpm++2m", typeof(DpmSolverMultistepScheduler))]
    [InlineData("dpm++2m_karras", typeof(DpmSolverMultistepScheduler))]
    [InlineData("EulerAncestralDiscreteScheduler", typeof(EulerAncestralDiscreteScheduler))]
    [InlineData("DPMSolverMultistepScheduler", typeof(DpmSolverMultistepScheduler))]
    public void FactoryMapsNamesAndClassNames(string name, Type expected)
    {
        using var s = SchedulerFactory.Create(name, Sd);
        Assert.IsType(expected, s);
        Assert.Equal(name == "dpm++2m_karras", s.Config.UseKarrasSigmas);
    }

    [Theory]
    [InlineData("DDIM", "ddim")]
    [InlineData(" Euler_A ", "euler_a")]
    [InlineData("EulerAncestralDiscreteScheduler", "euler_a")]
    [InlineData("default", "pndm")]
    [InlineData("", "pndm")]
    public void SamplerSpellingsShareOneKeyForMetadata(string name, string key)
    {
        Assert.True(SchedulerFactory.IsKnown(name));
        Assert.Equal(key, SchedulerFactory.KeyOf(name, Sd with { ClassName = "PNDMScheduler" }));
    }

    [Fact]
    public void ADiffusersClassNameTakesKarrasFromTheModelsConfigAndUnknownNamesAreRefused()
    {
        Assert.Equal("dpm++2m_karras", SchedulerFactory.KeyOf("DPMSolverMultistepScheduler", Sd with { UseKarrasSigmas = true }));
        Assert.Equal("dpm++2m", SchedulerFactory.KeyOf("DPMSolverMultistepScheduler", Sd));
        // A class name on a config the short name would change keeps the class name: given back, it draws the same images.
        Assert.Equal("pndm", SchedulerFactory.KeyOf("PNDMScheduler", Sd));
        Assert.Equal("PNDMScheduler", SchedulerFactory.KeyOf("PNDMScheduler", Sd with { SkipPrkSteps = false }));
        Assert.Equal("DPMSolverMultistepScheduler", SchedulerFactory.KeyOf("DPMSolverMultistepScheduler", Sd with { SolverOrder = 3 }));
        Assert.False(SchedulerFactory.IsKnown("heun"));
        Assert.False(SchedulerFactory.IsKnown("ddimscheduler"));   // class names are exact, as diffusers' _class_name
        Assert.Contains("heun", Assert.Throws<ArgumentException>(() => SchedulerFactory.KeyOf("heun", Sd)).Message);
    }

    [Fact]
    public void KarrasNameChangesTheSchedule()
    {
        using var plain = SchedulerFactory.Create("dpm++2m", Sd with { UseKarrasSigmas = true });
        using var karras = SchedulerFactory.Create("dpm++2m_karras", Sd);
        plain.SetTimesteps(10);
        karras.SetTimesteps(10);
        Assert.False(plain.Timesteps.eq(karras.Timesteps).all().item<bool>());
    }

    [Theory]
    [InlineData("""{"_class_name": "DDIMScheduler", "beta_schedule": "cubic"}""", "beta_schedule")]
    [InlineData("""{"_class_name": "DDIMScheduler", "prediction_type": "noise"}""", "prediction_type")]
    [InlineData("""{"_class_name": "DDIMScheduler", "timestep_spacing": "uniform"}""", "timestep_spacing")]
    [InlineData("""{"_class_name": "DDIMScheduler", "num_train_timesteps": "many"}""", "num_train_timesteps")]
    [InlineData("""{"_class_name": "DDIMScheduler", "clip_sample": 3}""", "clip_sample")]
    [InlineData("""{"_class_name": "DDIMScheduler", "num_train_timesteps": 4, "trained_betas": [0.1, 0.2]}""", "trained_betas")]
    [InlineData("""{"_class_name": "DDIMScheduler", "beta_start": 0.5, "beta_end": 0.1}""", "beta_start")]
    [InlineData("""{"_class_name": "DDIMScheduler", """, "invalid JSON")]
    public void BadConfigErrorNamesTheFileAndTheFault(string json, string fault)
    {
        var path = Path.Combine(Path.GetTempPath(), $"sched-{Guid.NewGuid():N}", "scheduler_config.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        try
        {
            File.WriteAllText(path, json);
            var ex = Assert.Throws<InvalidDataException>(() => SchedulerFactory.FromConfig(SchedulerConfig.Load(path)));
            Assert.Contains(path, ex.Message);
            Assert.Contains(fault, ex.Message);
        }
        finally { Directory.Delete(Path.GetDirectoryName(path)!, true); }
    }

    [Fact]
    public void UnsupportedFeatureErrorNamesTheFile()
    {
        var cfg = SchedulerConfig.FromJson(ConfigJson.Parse("""{"_class_name": "DDIMScheduler", "thresholding": true}""", "my/scheduler_config.json"));
        var ex = Assert.Throws<InvalidDataException>(() => SchedulerFactory.FromConfig(cfg));
        Assert.Contains("my/scheduler_config.json", ex.Message);
        Assert.Contains("thresholding", ex.Message);
    }

    [Fact]
    public void SdConfigWithInfinityLiteralLoads()
    {
        var cfg = SchedulerConfig.FromJson(ConfigJson.Parse("""{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "beta_schedule": "squaredcos_cap_v2"}"""));
        Assert.Equal(double.NegativeInfinity, cfg.LambdaMinClipped);
        using var s = SchedulerFactory.FromConfig(cfg);
        s.SetTimesteps(20);
        Assert.Equal(20, s.Timesteps.shape[0]);
    }

    [Fact]
    public void StochasticStepWithoutNoiseSourceIsAnError()
    {
        using var s = new DdimScheduler(Sd) { Eta = 1.0 };
        s.SetTimesteps(5);
        using var x = zeros(1, 4, 2, 2);
        var ex = Assert.Throws<ArgumentNullException>(() => s.Step(x, s.TimestepValues()[0], x));
        Assert.Contains("NoiseSource", ex.Message);
    }

    [Fact]
    public void StepBeforeSetTimestepsIsAnError()
    {
        using var s = new EulerDiscreteScheduler(Sd);
        using var x = zeros(1, 4, 2, 2);
        Assert.Throws<InvalidOperationException>(() => s.Step(x, 999, x));
    }

    [Fact]
    public void SeededNoiseIsTheSameWithOneAndTwoThreads()
    {
        int threads = get_num_threads();
        try
        {
            long[] shape = [2, 4, 64, 64];
            set_num_threads(1);
            using var a = new SeededNoiseSource(1234);
            using var one = a.Next(shape, ScalarType.Float32, CPU);
            using var oneSecond = a.Next(shape, ScalarType.Float32, CPU);
            set_num_threads(2);
            using var b = new SeededNoiseSource(1234);
            using var two = b.Next(shape, ScalarType.Float32, CPU);
            using var twoSecond = b.Next(shape, ScalarType.Float32, CPU);
            Assert.True(one.eq(two).all().item<bool>(), "first draw differs between 1 and 2 threads");
            Assert.True(oneSecond.eq(twoSecond).all().item<bool>(), "second draw differs between 1 and 2 threads");
            Assert.False(one.eq(oneSecond).all().item<bool>());
            Assert.InRange(one.std().item<float>(), 0.98f, 1.02f);
        }
        finally { set_num_threads(threads); }
    }

    [Fact]
    public void InitialLatentsOfABatchEqualEachImageDrawnAlone()
    {
        long[] shape = [1, 4, 8, 8];
        using var streams = new PerImageNoise([42, 43, 44]);
        using var batch = streams.Next([3, 4, 8, 8], ScalarType.Float32, CPU);
        using var alone = new SeededNoiseSource(43);
        using var second = alone.Next(shape, ScalarType.Float32, CPU);
        Assert.True(batch[1].unsqueeze(0).eq(second).all().item<bool>());
        Assert.False(batch[1].eq(batch[2]).all().item<bool>());
    }

    [Fact]
    public void ReplayNoiseReturnsTensorsInOrderAndRefusesToRunPastTheEnd()
    {
        using var a = ones(2, 3);
        using var b = zeros(2, 3);
        var replay = new ReplayNoiseSource([a, b]);
        Assert.True(replay.Next([2, 3], ScalarType.Float32, CPU).eq(a).all().item<bool>());
        Assert.Throws<InvalidOperationException>(() => replay.Next([3, 2], ScalarType.Float32, CPU));
        Assert.True(replay.Next([2, 3], ScalarType.Float32, CPU).eq(b).all().item<bool>());
        Assert.Throws<InvalidOperationException>(() => replay.Next([2, 3], ScalarType.Float32, CPU));
    }

    [Fact]
    public void AddNoiseRejectsTimestepsOutsideTheTrainingRange()
    {
        using var s = new DdpmScheduler(Sd);
        using var x = zeros(1, 4, 2, 2);
        using var t = tensor(new long[] { 1000 });
        Assert.Throws<ArgumentOutOfRangeException>(() => s.AddNoise(x, x, t));
    }

    [Fact]
    public void SchedulerTensorsOutliveTheDisposeScopeTheyWereCreatedIn()
    {
        IScheduler s;
        using (NewDisposeScope())
        {
            s = SchedulerFactory.Create("euler", Sd);
            s.SetTimesteps(4);
        }
        using (s)
        {
            Assert.Equal(4, s.Timesteps.shape[0]);
            Assert.Equal(5, s.Sigmas!.shape[0]);
            Assert.Equal(1000, s.AlphasCumprod.shape[0]);
        }
    }

    [Fact]
    public void CosineScheduleMatchesTheClosedForm()
    {
        using var s = new DdimScheduler(Sd with { BetaSchedule = BetaSchedule.SquaredCosCapV2 });
        // alpha_bar(t) = cos^2((t/N + 0.008) / 1.008 * pi / 2), normalised by alpha_bar(0); cumprod telescopes to it.
        double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        var ac = s.AlphasCumprod.data<float>().ToArray();
        foreach (int i in new[] { 0, 100, 500, 900 })
            Assert.Equal(AlphaBar((i + 1) / 1000.0) / AlphaBar(0), ac[i], 5e-6);
    }

    [Theory]
    [InlineData("ddpm", 1)] [InlineData("ddim", 1)] [InlineData("pndm", 1)] [InlineData("lms", 1)]
    [InlineData("euler", 1)] [InlineData("euler_a", 1)] [InlineData("dpm++2m", 1)] [InlineData("dpm++2m_karras", 1)]
    [InlineData("ddpm", 7)] [InlineData("ddim", 7)] [InlineData("pndm", 7)] [InlineData("lms", 7)]
    [InlineData("euler", 7)] [InlineData("euler_a", 7)] [InlineData("dpm++2m", 7)] [InlineData("dpm++2m_karras", 7)]
    public void ShortRunsWithSeededNoiseAreFiniteAndReproducible(string name, int steps)
    {
        Tensor Run()
        {
            using var s = SchedulerFactory.Create(name, Sd);
            if (s is DdimScheduler ddim) ddim.Eta = 0.5;
            s.SetTimesteps(steps);
            Assert.Equal(name == "pndm" && steps > 1 ? steps + 1 : steps, s.Timesteps.shape[0]); // PLMS repeats the second timestep
            using var noise = new SeededNoiseSource(7);
            using var source = new SeededNoiseSource(3);
            var x = source.Next([1, 4, 4, 4], ScalarType.Float32, CPU) * s.InitNoiseSigma;
            foreach (var t in s.TimestepValues())
                using (NewDisposeScope())
                {
                    var eps = s.ScaleModelInput(x, t) * 0.5;
                    x = s.Step(eps, t, x, noise).MoveToOuterDisposeScope();
                }
            return x;
        }
        using var a = Run();
        using var b = Run();
        Assert.True(a.isfinite().all().item<bool>(), $"{name}: non-finite result");
        Assert.True(a.eq(b).all().item<bool>(), $"{name}: two seeded runs differ");
    }

    [Fact]
    public void EulerLogLinearSigmasAreGeometricBetweenTheTrainingExtremes()
    {
        using var s = new EulerDiscreteScheduler(Sd with { InterpolationType = "log_linear" });
        s.SetTimesteps(4);
        var train = s.AlphasCumprod.data<float>().Select(a => Math.Sqrt((1 - a) / a)).ToArray();
        var sigmas = s.Sigmas!.data<float>().Select(v => (double)v).ToArray();
        Assert.Equal(6, sigmas.Length); // n + 1 log-spaced values and the final 0, as diffusers 0.25.0 builds them
        Assert.Equal(train[^1], sigmas[0], 1e-4);
        Assert.Equal(train[0], sigmas[4], 1e-5);
        Assert.Equal(0, sigmas[5]);
        for (int i = 1; i < 4; i++) Assert.Equal(Math.Log(sigmas[i] / sigmas[i - 1]), Math.Log(sigmas[i + 1] / sigmas[i]), 1e-4);
    }
}
