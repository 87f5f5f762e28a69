namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>ONNX's TensorProto.DataType values for the element types the exports use.</summary>
public enum OnnxDataType
{
    Float = 1,
    UInt8 = 2,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
    Float16 = 10,
}
