namespace DiffusionPeft.Adapters;

/// <summary>Everything that defines one adapter on one layer. Per-pattern overrides change Rank and Alpha only.</summary>
public sealed record AdapterOptions
{
    public AdapterMethod Method { get; init; } = AdapterMethod.Lora;
    public int Rank { get; init; } = 4;
    public double Alpha { get; init; } = 4;
    /// <summary>rsLoRA: s = alpha / sqrt(r) instead of alpha / r.</summary>
    public bool RsLora => Method == AdapterMethod.RsLora;
    public LoraInit Init { get; init; } = LoraInit.KaimingUniform;
    /// <summary>Dropout probability on the adapter branch input (training only).</summary>
    public double Dropout { get; init; }
    /// <summary>SingLoRA ramp length T in optimizer steps: u(t) = min(t / T, 1); 0 means u = 1 from the start.</summary>
    public long RampSteps { get; init; } = 100;
    /// <summary>SingLoRA: multiplier on the kaiming-uniform init of A (bound 1/sqrt(r)).</summary>
    public double InitScale { get; init; } = 1.0;
    public SdsBasis SdsBasis { get; init; } = SdsBasis.Qr;
    /// <summary>SDS-LoRA: a column of Q is zeroed where |R[ii]| &lt;= SdsTolerance * max_j |R[jj]| (or R is all zero, e.g. B = 0 at init).</summary>
    public double SdsTolerance { get; init; } = 1e-6;
    /// <summary>
    /// Dtype of the adapter tensors; null: the base weight's. Float32 on a bf16 base gives fp32 adapters on a frozen bf16
    /// model: the layer then computes the adapter branches in the adapter dtype and returns the input's dtype.
    /// </summary>
    public TorchSharp.torch.ScalarType? ParameterDType { get; init; }
    /// <summary>Whether the adapter's parameters require grad (false for adapters loaded for inference).</summary>
    public bool Trainable { get; init; } = true;

    /// <summary>The method's scale s (without the user's per-adapter weight).</summary>
    public double Scaling => RsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    public void Validate()
    {
        if (Rank < 1) throw new ArgumentOutOfRangeException(nameof(Rank), Rank, "adapter rank must be at least 1");
        if (!double.IsFinite(Alpha)) throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "adapter alpha must be finite");
        if (Dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "dropout must be in [0, 1)");
        if (RampSteps < 0) throw new ArgumentOutOfRangeException(nameof(RampSteps), RampSteps, "SingLoRA ramp length must be >= 0");
        if (!(InitScale > 0)) throw new ArgumentOutOfRangeException(nameof(InitScale), InitScale, "init scale must be positive");
        if (!(SdsTolerance >= 0)) throw new ArgumentOutOfRangeException(nameof(SdsTolerance), SdsTolerance, "SDS tolerance must be >= 0");
    }
}
