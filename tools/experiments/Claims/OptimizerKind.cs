using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.Claims;

/// <summary>AdamW (β = 0.9, 0.999, weight decay 0), plain SGD, and SGD with heavy-ball momentum 0.9.</summary>
public enum OptimizerKind { AdamW, Sgd, SgdMomentum }

public static class Optimizers
{
    public static optim.Optimizer Create(OptimizerKind kind, IEnumerable<Parameter> parameters, double lr) => kind switch
    {
        OptimizerKind.AdamW => optim.AdamW(parameters, lr, weight_decay: 0),
        OptimizerKind.Sgd => optim.SGD(parameters, lr),
        OptimizerKind.SgdMomentum => optim.SGD(parameters, lr, momentum: 0.9),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static string Label(OptimizerKind kind) => kind switch
    {
        OptimizerKind.AdamW => "AdamW",
        OptimizerKind.Sgd => "SGD",
        _ => "SGD+momentum 0.9",
    };
}
