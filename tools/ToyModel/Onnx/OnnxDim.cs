namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>A dimension of a graph input or output: a fixed size, or a named symbolic one ("batch").</summary>
public readonly record struct OnnxDim(long Value, string? Symbol)
{
    public static implicit operator OnnxDim(long value) => new(value, null);
    public static implicit operator OnnxDim(string symbol) => new(-1, symbol);

    public override string ToString() => Symbol ?? Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
