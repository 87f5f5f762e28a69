namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>A constant tensor of the graph (ONNX TensorProto with raw little-endian data).</summary>
public sealed record OnnxInitializer(string Name, OnnxDataType DataType, IReadOnlyList<long> Dims, byte[] RawData)
{
    internal ProtoMessage ToProto() => new ProtoMessage().Int64s(1, Dims).Int64(2, (long)DataType).String(8, Name).Bytes(9, RawData);
}
