using DiffusionPeft.Metrics;

namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>
/// The toy CLIP's image tower as a CLIP vision export: <c>pixel_values</c> [B, 3, 224, 224], CLIP-normalised as
/// <see cref="ClipPreprocessor"/> makes them (a 64 px scene resized to 224) → <c>image_embeds</c> [B, E], not
/// normalised. The graph undoes the normalisation, maps to [-1, 1] and average-pools 7×7 to the 32 px the tower
/// reaches from 64 px with its own 2×2 pool, then runs <see cref="ToyImageEncoder.Embed"/>.
/// </summary>
public static class ToyClipVisionOnnx
{
    public const string InputName = "pixel_values", OutputName = "image_embeds";

    public static OnnxGraph Build(ToyImageEncoder tower, PreprocessSpec preprocessing, OnnxWeightStorage storage = OnnxWeightStorage.Float32)
    {
        int size = preprocessing.Crop;
        if (size % ToyImageEncoder.InputSize != 0)
            throw new ArgumentException($"the crop {size} is not a multiple of the tower's {ToyImageEncoder.InputSize} px input");
        var g = new OnnxGraph("toy-clip-vision", storage);
        var x = g.Input(InputName, OnnxDataType.Float, "batch", 3, size, size);
        x = PixelRange.FromNormalised(g, x, preprocessing);
        x = g.AveragePool(x, size / ToyImageEncoder.InputSize, size / ToyImageEncoder.InputSize);
        x = g.Gelu(g.Conv2d(tower.conv1, "vision_model.conv1", x));
        x = g.Gelu(g.Conv2d(tower.conv2, "vision_model.conv2", x));
        x = g.Gelu(g.Conv2d(tower.conv3, "vision_model.conv3", x));
        x = g.Gelu(g.Linear2d(tower.fc1, "vision_model.fc1", g.Flatten(x)));
        x = g.Linear2d(tower.fc2, "vision_model.fc2", x);
        g.Output(x, OutputName, OnnxDataType.Float, "batch", tower.fc2.out_features);
        return g;
    }
}
