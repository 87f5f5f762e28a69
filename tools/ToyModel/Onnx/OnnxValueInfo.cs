namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>A graph input or output: name, element type and shape (ONNX ValueInfoProto of a tensor type).</summary>
public sealed record OnnxValueInfo(string Name, OnnxDataType DataType, IReadOnlyList<OnnxDim> Shape)
{
    internal ProtoMessage ToProto()
    {
        var shape = new ProtoMessage();
        foreach (var d in Shape)
            shape.Message(1, d.Symbol is { } s ? new ProtoMessage().String(2, s) : new ProtoMessage().Int64(1, d.Value));
        var tensorType = new ProtoMessage().Int64(1, (long)DataType).Message(2, shape);
        return new ProtoMessage().String(1, Name).Message(2, new ProtoMessage().Message(1, tensorType));
    }
}
