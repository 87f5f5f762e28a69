using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// Every weight of some modules trains, in one parameter group per module (pretraining a VAE, a text encoder and its
/// image tower, a whole UNet). Parameter names are "module.parameter". Modules in bf16 train in mixed precision, on fp32
/// <see cref="MasterWeights"/>. The final files are the caller's to write.
/// </summary>
public sealed class ModuleTarget : ITrainingTarget, IDisposable
{
    private readonly Action<string, long> _writeFinal;
    private readonly MasterWeights? _masters;

    /// <param name="fp32Start">Mixed precision: the masters' starting values by parameter name (the fp32 weights the
    /// modules were made with, not their bf16 rounding); copied.</param>
    public ModuleTarget(IReadOnlyList<(string Name, nn.Module Module, double LearningRate)> modules, Action<string, long> writeFinal,
        IReadOnlyDictionary<string, Tensor>? fp32Start = null)
    {
        _writeFinal = writeFinal;
        var groups = modules.Select(m => (m.Name, m.LearningRate,
            Parameters: m.Module.named_parameters().Select(p => (Name: $"{m.Name}.{p.name}", Parameter: p.parameter)).ToList())).ToList();
        foreach (var (_, p) in groups.SelectMany(g => g.Parameters)) p.requires_grad = true;
        var dtypes = groups.SelectMany(g => g.Parameters).Select(p => p.Parameter.dtype).Distinct().ToList();
        if (dtypes.Count > 1 || dtypes.Any(d => d is not (ScalarType.Float32 or ScalarType.BFloat16)))
            throw new ArgumentException($"modules train in float32, or in bfloat16 on float32 master weights; got {string.Join(", ", dtypes)}");
        if (dtypes is [ScalarType.BFloat16])
        {
            _masters = new MasterWeights(groups.SelectMany(g => g.Parameters), fp32Start);
            groups = groups.Select(g => (g.Name, g.LearningRate, g.Parameters.Select(p => (p.Name, Parameter: _masters.MasterOf(p.Name))).ToList())).ToList();
        }
        ParameterGroups = groups.Select(g => new TrainableGroup(g.Name, g.Parameters, g.LearningRate)).ToList();
    }

    public IReadOnlyList<TrainableGroup> ParameterGroups { get; }

    public long ParameterCount => ParameterGroups.Sum(g => g.Parameters.Sum(p => p.Parameter.numel()));

    /// <summary>True when the modules compute in bf16 and the optimizer updates fp32 masters.</summary>
    public bool MixedPrecision => _masters is not null;

    public void AfterBackward() => _masters?.AfterBackward();

    public void OnOptimizerStep(long stepsTaken) => _masters?.CopyToModel();

    public void ParametersReplaced() => _masters?.CopyToModel();

    public void WriteFinal(string runDirectory, long stepsTaken) => _writeFinal(runDirectory, stepsTaken);

    /// <summary>Frees the fp32 masters (mixed precision); the modules are the caller's.</summary>
    public void Dispose() => _masters?.Dispose();
}
