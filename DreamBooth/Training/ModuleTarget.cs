using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// Every weight of some modules trains, in one parameter group per module (pretraining a VAE, a text encoder and its
/// image tower, a whole UNet). Parameter names are "module.parameter". The final files are the caller's to write.
/// </summary>
public sealed class ModuleTarget : ITrainingTarget
{
    private readonly Action<string, long> _writeFinal;

    public ModuleTarget(IReadOnlyList<(string Name, nn.Module Module, double LearningRate)> modules, Action<string, long> writeFinal)
    {
        _writeFinal = writeFinal;
        var groups = new List<TrainableGroup>();
        foreach (var (name, module, lr) in modules)
        {
            var parameters = module.named_parameters().Select(p => (Name: $"{name}.{p.name}", Parameter: p.parameter)).ToList();
            foreach (var (_, p) in parameters) p.requires_grad = true;
            groups.Add(new TrainableGroup(name, parameters, lr));
        }
        ParameterGroups = groups;
    }

    public IReadOnlyList<TrainableGroup> ParameterGroups { get; }

    public long ParameterCount => ParameterGroups.Sum(g => g.Parameters.Sum(p => p.Parameter.numel()));

    public void OnOptimizerStep(long stepsTaken) { }

    public void WriteFinal(string runDirectory, long stepsTaken) => _writeFinal(runDirectory, stepsTaken);
}
