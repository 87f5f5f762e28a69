namespace DiffusionPeft.Experiments.Claims;

/// <summary>A Linear layer's shape: weight d_out x d_in.</summary>
public sealed record LayerShape(int DIn, int DOut)
{
    public bool IsSquare => DIn == DOut;
    public override string ToString() => $"{DIn}→{DOut}";
}
