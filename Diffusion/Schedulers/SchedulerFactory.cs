namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// Creates a scheduler from a name users type (ddim, euler_a, dpm++2m_karras, ...) or a diffusers <c>_class_name</c>.
/// (Not called "Schedulers": a type named like its namespace cannot be reached as Schedulers.X from sibling namespaces.)
/// </summary>
public static class SchedulerFactory
{
    private static readonly (string Name, string ClassName, Func<SchedulerConfig, SchedulerConfig> Adjust)[] Known =
    [
        ("ddpm", "DDPMScheduler", c => c),
        ("ddim", "DDIMScheduler", c => c),
        ("pndm", "PNDMScheduler", c => c with { SkipPrkSteps = true }),
        ("lms", "LMSDiscreteScheduler", c => c),
        ("euler", "EulerDiscreteScheduler", c => c),
        ("euler_a", "EulerAncestralDiscreteScheduler", c => c),
        ("dpm++2m", "DPMSolverMultistepScheduler", c => c with { AlgorithmType = "dpmsolver++", SolverOrder = 2, UseKarrasSigmas = false }),
        ("dpm++2m_karras", "DPMSolverMultistepScheduler", c => c with { AlgorithmType = "dpmsolver++", SolverOrder = 2, UseKarrasSigmas = true }),
    ];

    /// <summary>The short names accepted by <see cref="Create"/> (diffusers class names are accepted too).</summary>
    public static IReadOnlyList<string> Names { get; } = Known.Select(k => k.Name).ToArray();

    public static IReadOnlyList<string> ClassNames { get; } = Known.Select(k => k.ClassName).Distinct().ToArray();

    /// <summary>
    /// A short name applies its own settings on top of <paramref name="config"/> (e.g. dpm++2m_karras turns on Karras sigmas;
    /// the scheduler_config.json of a Stable Diffusion checkpoint is usually a PNDM one, and its keys other classes
    /// do not take are ignored, as in diffusers' from_config). A diffusers class name uses the config as it is.
    /// </summary>
    public static IScheduler Create(string name, SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var key = (name ?? "").Trim();
        int known = ShortNameIndex(key);
        if (known >= 0) return CreateClass(Known[known].ClassName, Known[known].Adjust(config));
        if (ClassNames.Contains(key, StringComparer.Ordinal)) return CreateClass(key, config);
        throw Unknown(name);
    }

    /// <summary>"" or "default" (any case): the model's own scheduler, as its scheduler_config.json names it.</summary>
    public static bool IsDefault(string? name) => (name ?? "").Trim() is var key && (key.Length == 0 || key.Equals("default", StringComparison.OrdinalIgnoreCase));

    /// <summary>Whether <see cref="Create"/> (or the default) takes <paramref name="name"/>: the same rule, checked before any model loads.</summary>
    public static bool IsKnown(string? name) => IsDefault(name) || ShortNameIndex(name) >= 0 || ClassNames.Contains((name ?? "").Trim(), StringComparer.Ordinal);

    /// <summary>
    /// The name of the scheduler <paramref name="name"/> gives on a model with <paramref name="config"/>, for metadata:
    /// short names in any case come out as one key ("DDIM" → ddim); a diffusers class name as the short name that makes
    /// the same scheduler from this config (its settings already what the short name sets), else as the class name, so
    /// that the recorded name, given back, draws the same images.
    /// </summary>
    public static string KeyOf(string? name, SchedulerConfig config)
    {
        if (IsDefault(name)) return ShortNameOf(config);
        if (ShortNameIndex(name) is var known and >= 0) return Known[known].Name;
        var key = (name ?? "").Trim();
        var asClass = config with { ClassName = key };
        return ClassNames.Contains(key, StringComparer.Ordinal)
            ? Known.FirstOrDefault(k => k.ClassName == key && k.Adjust(asClass) == asClass).Name ?? key
            : throw Unknown(name);
    }

    /// <summary>The index in Known of the short name <paramref name="name"/> (any case); -1 when it is none.</summary>
    private static int ShortNameIndex(string? name) =>
        Array.FindIndex(Known, k => string.Equals(k.Name, (name ?? "").Trim(), StringComparison.OrdinalIgnoreCase));

    private static ArgumentException Unknown(string? name) => new(
        $"unknown scheduler '{name}'. Valid names: {string.Join(", ", Names)} (or a diffusers class name: {string.Join(", ", ClassNames)}).", "name");

    /// <summary>The short name of the scheduler a config describes (its <c>_class_name</c>; DPM-Solver with Karras sigmas is dpm++2m_karras).</summary>
    public static string ShortNameOf(SchedulerConfig config)
    {
        if (config.ClassName == "DPMSolverMultistepScheduler") return config.UseKarrasSigmas ? "dpm++2m_karras" : "dpm++2m";
        return Known.FirstOrDefault(k => k.ClassName == config.ClassName).Name ?? config.ClassName ?? "default";
    }

    /// <summary>The scheduler named by the config's own <c>_class_name</c>.</summary>
    public static IScheduler FromConfig(SchedulerConfig config) =>
        config.ClassName is not { } cls
            ? throw new InvalidDataException($"{config.Source}: no _class_name; choose a scheduler by name ({string.Join(", ", Names)}).")
            : ClassNames.Contains(cls, StringComparer.Ordinal) ? Create(cls, config)
            : throw new InvalidDataException($"{config.Source}: _class_name '{cls}' is not a scheduler this library has ({string.Join(", ", ClassNames)}); choose one by name.");

    private static IScheduler CreateClass(string className, SchedulerConfig c) => className switch
    {
        "DDPMScheduler" => new DdpmScheduler(c),
        "DDIMScheduler" => new DdimScheduler(c),
        "PNDMScheduler" => new PndmScheduler(c),
        "LMSDiscreteScheduler" => new LmsDiscreteScheduler(c),
        "EulerDiscreteScheduler" => new EulerDiscreteScheduler(c),
        "EulerAncestralDiscreteScheduler" => new EulerAncestralDiscreteScheduler(c),
        "DPMSolverMultistepScheduler" => new DpmSolverMultistepScheduler(c),
        _ => throw new InvalidOperationException(className),
    };
}
