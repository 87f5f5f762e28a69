using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Tests.Golden;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Schedulers;

/// <summary>
/// Every tensor of every manifest case of kind "schedulers", driven by the case's config.json (one full config per
/// variant, with its _class_name), the manifest's trajectory_variants and the tensor names in io.safetensors.
/// </summary>
[Trait("Category", "Golden")]
public sealed class SchedulerGoldenTests
{
    /// <summary>The last sigma is 0, where a relative bound alone would demand an exact zero.</summary>
    private const double SigmaAtol = 1e-9;

    public static TheoryData<string> Cases => GoldenData.CasesOfKind("schedulers");

    /// <summary>(case, variant) for every traj.&lt;variant&gt;.* in io.safetensors and every manifest trajectory variant.</summary>
    public static TheoryData<string, string> Variants
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (string caseName in GoldenData.CasesOfKind("schedulers"))
            {
                var fromIo = GoldenCase.Load(caseName).IoNames.Select(TrajectoryVariantOf).OfType<string>();
                var fromManifest = (GoldenData.Case(caseName)["trajectory_variants"] as JsonObject)?.Select(kv => kv.Key) ?? [];
                foreach (var v in fromIo.Concat(fromManifest).Distinct().Order()) data.Add(caseName, v);
            }
            return data;
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void EveryIoTensorIsCoveredByTheseTests(string caseName)
    {
        var c = GoldenCase.Load(caseName);
        var known = new Regex(@"^(common\.(betas|alphas_cumprod|initial_noise)|timesteps\.[^.]+\.(leading|linspace|trailing)\.\d+|sigmas\.[^.]+\.(leading|linspace|trailing)\.\d+" +
                              @"|traj\.[^.]+\.[^.]+\.(timesteps|sigmas|init_noise_sigma|initial_latent|model_input|model_output|trajectory|noise|noise_drawn)" +
                              @"|add_noise\.(x0|noise|timesteps)|add_noise\.[^.]+(\.timesteps)?|get_velocity\.[^.]+)$");
        var unknown = c.IoNames.Where(n => !known.IsMatch(n)).ToArray();
        Assert.True(unknown.Length == 0, $"{caseName}: io tensors no test checks: {string.Join(", ", unknown)}");
        foreach (var name in c.IoNames.Where(n => n.StartsWith("timesteps.") || n.StartsWith("sigmas.") || n.StartsWith("add_noise.") || n.StartsWith("get_velocity.")))
            if (name.Split('.') is [_, var sched, ..] && !new[] { "x0", "noise", "timesteps" }.Contains(sched))
                Assert.True(c.ClassOf(sched) is not null, $"{caseName}: {name}: no variant in config.json tells which class '{sched}' is");
    }

    [Theory, MemberData(nameof(Cases))]
    public void BetasAndAlphasCumprodMatchForEveryVariant(string caseName)
    {
        var c = GoldenCase.Load(caseName);
        var limits = SchedulerTolerances.Of(caseName);
        using var betas = c.Io.Read("common.betas");
        using var ac = c.Io.Read("common.alphas_cumprod");
        foreach (var variant in c.VariantNames)
        {
            using var s = SchedulerFactory.FromConfig(c.VariantConfig(variant));
            TensorAssert.Close(s.Betas, betas, 0, limits.ConstantRtol, $"{caseName} {variant}: betas");
            TensorAssert.Close(s.AlphasCumprod, ac, 0, limits.ConstantRtol, $"{caseName} {variant}: alphas_cumprod");
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void TimestepsAndSigmasMatchForEverySpacingAndStepCount(string caseName)
    {
        var c = GoldenCase.Load(caseName);
        var limits = SchedulerTolerances.Of(caseName);
        var pattern = new Regex(@"^(timesteps|sigmas)\.(?<sched>[^.]+)\.(?<spacing>leading|linspace|trailing)\.(?<n>\d+)$");
        int checkedCount = 0;
        foreach (var name in c.IoNames)
        {
            var m = pattern.Match(name);
            if (!m.Success) continue;
            string sched = m.Groups["sched"].Value, spacing = m.Groups["spacing"].Value;
            var config = c.ConfigFor(sched, spacing);
            using var s = SchedulerFactory.FromConfig(config);
            s.SetTimesteps(int.Parse(m.Groups["n"].Value));
            using var expected = c.Io.Read(name);
            if (name.StartsWith("timesteps.")) AssertTimesteps(s.Timesteps, expected, limits, $"{caseName}: {name}");
            else TensorAssert.Close(s.Sigmas ?? throw new Xunit.Sdk.XunitException($"{name}: {config.ClassName} has no sigmas"), expected, SigmaAtol, limits.ConstantRtol, $"{caseName}: {name}");
            checkedCount++;
        }
        Assert.True(checkedCount > 0, $"{caseName}: no timesteps.* / sigmas.* tensors");
    }

    [Theory, MemberData(nameof(Variants))]
    public void TrajectoryMatches(string caseName, string variant)
    {
        var c = GoldenCase.Load(caseName);
        var tol = GoldenData.ToleranceOf(caseName);
        var limits = SchedulerTolerances.Of(caseName);
        var spec = GoldenData.Case(caseName)["trajectory_variants"]?[variant] as JsonObject
            ?? throw new Xunit.Sdk.XunitException($"{caseName}: trajectory variant '{variant}' is not described in the manifest");
        var model = ModelFunctionOf(caseName, variant);
        string P(string what) => $"traj.{variant}.{what}";
        Assert.True(c.Io.Contains(P("trajectory")), $"{caseName}: {P("trajectory")} is missing from io.safetensors");

        using var scheduler = SchedulerFactory.FromConfig(c.VariantConfig(variant));
        var kwargs = spec["step_kwargs"] as JsonObject ?? [];
        if (kwargs["eta"] is JsonValue eta) ((DdimScheduler)scheduler).Eta = (double)eta;
        if (kwargs["order"] is JsonValue order) ((LmsDiscreteScheduler)scheduler).LmsOrder = (int)order;
        scheduler.SetTimesteps((int)spec["num_inference_steps"]!);

        using var scope = NewDisposeScope();
        var expectedTimesteps = c.Io.Read(P("timesteps"));
        AssertTimesteps(scheduler.Timesteps, expectedTimesteps, limits, $"{variant}: timesteps");
        if (spec["num_model_calls"] is JsonValue calls) Assert.Equal((long)calls, scheduler.Timesteps.shape[0]);
        if (c.Io.Contains(P("sigmas")))
            TensorAssert.Close(scheduler.Sigmas ?? throw new Xunit.Sdk.XunitException($"{variant}: no sigmas"), c.Io.Read(P("sigmas")), SigmaAtol, limits.ConstantRtol, $"{variant}: sigmas");
        double expectedSigma = c.Io.Read(P("init_noise_sigma")).to_type(ScalarType.Float64).item<double>();
        Assert.True(Math.Abs(scheduler.InitNoiseSigma - expectedSigma) <= limits.ConstantRtol * Math.Abs(expectedSigma),
            $"{variant}: init_noise_sigma {scheduler.InitNoiseSigma:G9} != {expectedSigma:G9}");

        ReplayNoiseSource? replay = null;
        if (c.Io.Contains(P("noise")))
        {
            var noise = c.Io.Read(P("noise"));
            var drawn = c.Io.Contains(P("noise_drawn")) ? c.Io.Read(P("noise_drawn")).data<long>().ToArray() : Enumerable.Repeat(1L, (int)noise.shape[0]).ToArray();
            replay = new ReplayNoiseSource(Enumerable.Range(0, drawn.Length).Where(i => drawn[i] != 0).Select(i => noise[i]));
        }

        var latent = c.Io.Read("common.initial_noise") * scheduler.InitNoiseSigma;
        Compare(latent, c.Io.Read(P("initial_latent")), tol, P("initial_latent"));
        var modelInputs = c.Io.Read(P("model_input"));
        var modelOutputs = c.Io.Read(P("model_output"));
        var trajectory = c.Io.Read(P("trajectory"));
        var timesteps = scheduler.TimestepValues();
        for (int i = 0; i < timesteps.Length; i++)
        {
            double t = timesteps[i];
            using var step = NewDisposeScope(); // the scheduler's history must survive per-step scopes
            var input = scheduler.ScaleModelInput(latent, t);
            Compare(input, modelInputs[i], tol, $"{P("model_input")}[{i}] (t={t})");
            var output = model.Apply(input, t);
            Compare(output, modelOutputs[i], tol, $"{P("model_output")}[{i}] (t={t}, model {model})");
            latent = scheduler.Step(output, t, latent, replay);
            Compare(latent, trajectory[i], tol, $"{P("trajectory")}[{i}] (t={t})");
            latent.MoveToOuterDisposeScope();
        }
        if (replay is not null) Assert.True(replay.Remaining == 0, $"{variant}: the run drew {replay.Consumed} noise tensors, the reference {replay.Consumed + replay.Remaining}");
    }

    [Theory, MemberData(nameof(Cases))]
    public void AddNoiseAndGetVelocityMatch(string caseName)
    {
        var c = GoldenCase.Load(caseName);
        var tol = GoldenData.ToleranceOf(caseName);
        var io = GoldenData.Case(caseName)["io"] as JsonObject;
        using var scope = NewDisposeScope();
        var x0 = c.Io.Read("add_noise.x0");
        var noise = c.Io.Read("add_noise.noise");
        int checkedCount = 0;
        foreach (var name in c.IoNames)
        {
            if (name.Split('.') is not [var op and ("add_noise" or "get_velocity"), var sched] || sched is "x0" or "noise" or "timesteps") continue;
            using var s = SchedulerFactory.FromConfig(c.DefaultConfigFor(sched));
            Tensor timesteps;
            if (c.Io.Contains($"{op}.{sched}.timesteps"))
            {
                // Timesteps taken from the scheduler's own schedule: the manifest says after which set_timesteps(n).
                var meaning = (string?)io?[$"{op}.{sched}.timesteps"]?["meaning"] ?? "";
                var m = Regex.Match(meaning, @"set_timesteps\((\d+)\)");
                Assert.True(m.Success, $"{caseName}: {op}.{sched}.timesteps: the manifest does not say which set_timesteps(n) produced it");
                s.SetTimesteps(int.Parse(m.Groups[1].Value));
                timesteps = c.Io.Read($"{op}.{sched}.timesteps");
            }
            else timesteps = c.Io.Read(c.Io.Contains($"{op}.timesteps") ? $"{op}.timesteps" : "add_noise.timesteps");
            long count = timesteps.shape[0];
            var (x, e) = (x0[TensorIndex.Slice(0, count)], noise[TensorIndex.Slice(0, count)]);
            var actual = op == "add_noise" ? s.AddNoise(x, e, timesteps) : s.GetVelocity(x, e, timesteps);
            Compare(actual, c.Io.Read(name), tol, $"{caseName}: {name}");
            checkedCount++;
        }
        Assert.True(checkedCount > 0, $"{caseName}: no add_noise.* / get_velocity.* results");
    }

    private static void Compare(Tensor actual, Tensor expected, Tolerance tol, string what)
    {
        var (atol, rtol) = tol.For(what);
        TensorAssert.Close(actual, expected, atol, rtol, what);
    }

    private static void AssertTimesteps(Tensor actual, Tensor expected, SchedulerTolerances limits, string what)
    {
        Assert.True(actual.dtype == expected.dtype, $"{what}: dtype {actual.dtype} != expected {expected.dtype}");
        if (expected.dtype == ScalarType.Int64) TensorAssert.Close(actual, expected, 0, 0, what); // int64 values are exact in float64
        else TensorAssert.Close(actual, expected, limits.FloatTimestepAtol, 0, what);
    }

    /// <summary>The variant's own model_function if it states one, else the case's.</summary>
    internal static GoldenModelFunction ModelFunctionOf(string caseName, string variant)
    {
        var entry = GoldenData.Case(caseName);
        var node = entry["trajectory_variants"]?[variant]?["model_function"] ?? entry["model_function"];
        if (node is not JsonValue v || !v.TryGetValue<string>(out var text))
            throw new Xunit.Sdk.XunitException($"{caseName}: the manifest entry states no model_function (the stand-in model of the trajectories)");
        return GoldenModelFunction.Parse(text, $"{caseName} model_function");
    }

    /// <summary>
    /// The schedulers case's bounds for scheduler constants and float timesteps, read from its tolerance's text
    /// ("float32 timesteps within 1e-4", "scheduler constants (...) within 1e-6 relative"); where the case does not
    /// state one, its general atol/rtol apply.
    /// </summary>
    private sealed record SchedulerTolerances(double ConstantRtol, double FloatTimestepAtol)
    {
        public static SchedulerTolerances Of(string caseName)
        {
            var node = GoldenData.Case(caseName)["tolerance"];
            var general = Tolerance.From(node);
            var text = node is JsonObject o ? string.Join(" ", o.Where(kv => kv.Value is JsonValue).Select(kv => kv.Value!.ToString())) : "";
            const string number = @"(?<v>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)";
            var constants = Regex.Match(text, @"constants\b[^;]*?within " + number + " relative");
            var floatTimesteps = Regex.Match(text, @"float(?:32)? timesteps within " + number);
            return new SchedulerTolerances(
                constants.Success ? double.Parse(constants.Groups["v"].Value, System.Globalization.CultureInfo.InvariantCulture) : general.Rtol,
                floatTimesteps.Success ? double.Parse(floatTimesteps.Groups["v"].Value, System.Globalization.CultureInfo.InvariantCulture) : general.Atol);
        }
    }

    private static string? TrajectoryVariantOf(string name)
    {
        var m = Regex.Match(name, @"^traj\.(?<v>[^.]+\.[^.]+)\.trajectory$");
        return m.Success ? m.Groups["v"].Value : null;
    }

    /// <summary>A schedulers case: io.safetensors plus config.json (sd_scheduler_config and per-variant full configs).</summary>
    private sealed class GoldenCase
    {
        private static readonly Dictionary<string, GoldenCase> Cache = [];
        private readonly string _configPath;
        private readonly JsonObject _config;

        private GoldenCase(string caseName)
        {
            Io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
            _configPath = GoldenData.FileOf(caseName, "config");
            _config = ConfigJson.Load(_configPath).Root;
            IoNames = Io.Names.Order().ToArray();
        }

        public static GoldenCase Load(string caseName)
        {
            lock (Cache)
            {
                if (!Cache.TryGetValue(caseName, out var c)) Cache[caseName] = c = new GoldenCase(caseName);
                return c;
            }
        }

        public SafetensorsFile Io { get; }
        public IReadOnlyList<string> IoNames { get; }
        private JsonObject VariantsObject => _config["variants"] as JsonObject ?? throw new InvalidDataException($"{_configPath}: no 'variants'");
        public IEnumerable<string> VariantNames => VariantsObject.Select(kv => kv.Key);

        public SchedulerConfig VariantConfig(string variant) =>
            SchedulerConfig.FromJson(new ConfigJson($"{_configPath}#variants.{variant}",
                VariantsObject[variant] as JsonObject ?? throw new Xunit.Sdk.XunitException($"{_configPath}: no variant '{variant}'")));

        /// <summary>The diffusers class of a scheduler short name used in tensor names (ddpm, euler, ...), from the variants.</summary>
        public string? ClassOf(string sched) =>
            VariantNames.Where(v => v.StartsWith(sched + ".")).Select(v => VariantConfig(v).ClassName).FirstOrDefault();

        /// <summary>The variant &lt;sched&gt;.&lt;spacing&gt;, or any variant of that scheduler with the spacing set.</summary>
        public SchedulerConfig ConfigFor(string sched, string spacing)
        {
            if (VariantsObject.ContainsKey($"{sched}.{spacing}")) return VariantConfig($"{sched}.{spacing}");
            var any = VariantNames.FirstOrDefault(v => v.StartsWith(sched + ".")) ?? throw new Xunit.Sdk.XunitException($"{_configPath}: no variant of '{sched}'");
            return VariantConfig(any) with { TimestepSpacing = SchedulerConfig.ParseSpacing(spacing, _configPath) };
        }

        /// <summary>The SD scheduler config (sd_scheduler_config) built as the class of <paramref name="sched"/>, with that class's defaults.</summary>
        public SchedulerConfig DefaultConfigFor(string sched)
        {
            var sd = (JsonObject)(_config["sd_scheduler_config"] ?? throw new InvalidDataException($"{_configPath}: no sd_scheduler_config")).DeepClone();
            sd["_class_name"] = ClassOf(sched) ?? throw new Xunit.Sdk.XunitException($"{_configPath}: no variant of '{sched}'");
            return SchedulerConfig.FromJson(new ConfigJson($"{_configPath}#sd_scheduler_config", sd));
        }
    }
}
