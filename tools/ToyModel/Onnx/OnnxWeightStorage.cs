namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>How a graph stores its weights: float32, or float16 cast to float32 when the session loads (half the file).</summary>
public enum OnnxWeightStorage
{
    Float32,
    Float16,
}
