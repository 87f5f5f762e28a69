using DiffusionPeft.Metrics;
using DiffusionPeft.ToyModel.Dino;

namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>
/// The toy DINO's encoder as a DINO export: <c>pixel_values</c> [B, 3, 224, 224], ImageNet-normalised as
/// <see cref="DinoPreprocessor"/> makes them → <c>last_hidden_state</c> [B, 1, D] (one token: the embedding, which the
/// metric reads as row 0). For a 64 px scene, Resize(256) + CenterCrop(224) is its central 56 px upsampled 4×; the
/// graph undoes the normalisation, maps to [-1, 1], average-pools 4×4 back to 56 px and runs <see cref="ToyDinoEncoder"/>.
/// </summary>
public static class ToyDinoOnnx
{
    public const string InputName = "pixel_values", OutputName = "last_hidden_state";

    public static OnnxGraph Build(ToyDinoEncoder encoder, PreprocessSpec preprocessing, OnnxWeightStorage storage = OnnxWeightStorage.Float32)
    {
        int size = preprocessing.Crop;
        if (size % ToyDinoEncoder.InputSize != 0)
            throw new ArgumentException($"the crop {size} is not a multiple of the encoder's {ToyDinoEncoder.InputSize} px input");
        int pool = size / ToyDinoEncoder.InputSize;
        var g = new OnnxGraph("toy-dino", storage);
        var x = g.Input(InputName, OnnxDataType.Float, "batch", 3, size, size);
        x = PixelRange.FromNormalised(g, x, preprocessing);
        x = g.AveragePool(x, pool, pool);
        x = g.Gelu(g.Conv2d(encoder.conv1, "encoder.conv1", x));
        x = g.Gelu(g.Conv2d(encoder.conv2, "encoder.conv2", x));
        x = g.Gelu(g.Conv2d(encoder.conv3, "encoder.conv3", x));
        x = g.Gelu(g.Conv2d(encoder.conv4, "encoder.conv4", x));
        x = g.Flatten(g.Concat(1, g.GlobalAveragePool(x), g.GlobalMaxPool(x)));
        x = g.Unsqueeze(g.Linear2d(encoder.fc, "encoder.fc", x), 1);
        g.Output(x, OutputName, OnnxDataType.Float, "batch", 1, encoder.EmbedDim);
        return g;
    }
}
