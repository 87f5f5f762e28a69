using DiffusionPeft.Core.Imaging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DiffusionPeft.Metrics;

/// <summary>An image model that maps preprocessed float32 NCHW batches to one embedding per image.</summary>
public interface IImageEmbedder : IDisposable
{
    /// <summary>Names the model file (hash), output and preprocessing: embeddings with equal identity are interchangeable.</summary>
    string Identity { get; }
    string Metric { get; }
    ImagePreprocessor Preprocessor { get; }
    /// <summary>Embeds <paramref name="batch"/> images from <paramref name="pixelValues"/> ([batch, 3, crop, crop]).</summary>
    float[][] Embed(float[] pixelValues, int batch);
}

/// <summary>Shared ONNX plumbing of the image embedders: input <c>pixel_values</c> [B, 3, S, S] float32, checked against the preprocessing.</summary>
public abstract class OnnxImageEmbedder : IImageEmbedder
{
    protected const string InputName = "pixel_values";
    protected OnnxModel Model { get; }
    protected string OutputName { get; }
    public ImagePreprocessor Preprocessor { get; }
    public abstract string Metric { get; }
    public string Identity => $"{Metric}|onnx-sha256:{Model.Sha256}|{OutputName}|{Preprocessor.Spec.Identity}";

    protected OnnxImageEmbedder(string modelPath, string role, string outputName, int outputRank, ImagePreprocessor preprocessor, SessionOptions? options)
    {
        Preprocessor = preprocessor;
        OutputName = outputName;
        Model = new OnnxModel(modelPath, role, options);
        try
        {
            var input = Model.RequireInput(InputName, TensorElementType.Float, 4);
            Model.RequireDim(InputName, input, 1, 3, "channel count");
            Model.RequireDim(InputName, input, 2, preprocessor.Crop, "image height");
            Model.RequireDim(InputName, input, 3, preprocessor.Crop, "image width");
            Model.RequireOutput(outputName, TensorElementType.Float, outputRank);
        }
        catch { Model.Dispose(); throw; }
    }

    protected delegate T OutputReader<T>(ReadOnlySpan<float> output, long[] shape);

    public float[][] Embed(float[] pixelValues, int batch) => Run(pixelValues, batch, (o, s) => Extract(o, s, batch));

    protected T Run<T>(float[] pixelValues, int batch, OutputReader<T> read)
    {
        int per = Preprocessor.ValuesPerImage;
        if (batch <= 0 || pixelValues.Length != batch * per)
            throw new ArgumentException($"pixel_values holds {pixelValues.Length} floats; {batch} images of 3x{Preprocessor.Crop}x{Preprocessor.Crop} need {batch * per}");
        using var input = OrtValue.CreateTensorValueFromMemory(pixelValues, [batch, 3, Preprocessor.Crop, Preprocessor.Crop]);
        using var runOptions = new RunOptions();
        using var outputs = Model.Session.Run(runOptions, [InputName], [input], [OutputName]);
        var output = outputs[0];
        var shape = output.GetTensorTypeAndShape().Shape;
        if (shape.Length == 0 || shape[0] != batch)
            throw Model.Unfit($"output '{OutputName}' has shape [{string.Join(", ", shape)}] for a batch of {batch}");
        return read(output.GetTensorDataAsSpan<float>(), shape);
    }

    protected abstract float[][] Extract(ReadOnlySpan<float> output, long[] shape, int batch);

    public void Dispose() => Model.Dispose();
}

/// <summary>DINO ViT (e.g. dino-vits16 export): <c>last_hidden_state</c> [B, T, D] → the CLS token, row 0 (after the final LayerNorm).</summary>
public sealed class DinoEmbedder(string modelPath, ImagePreprocessor? preprocessor = null, SessionOptions? options = null)
    : OnnxImageEmbedder(modelPath, "DINO", "last_hidden_state", 3, preprocessor ?? DinoPreprocessor.Create(), options)
{
    public override string Metric => "dino";

    /// <summary>The whole <c>last_hidden_state</c> [B, T, D] (for checks), and its shape.</summary>
    public (float[] Values, long[] Shape) LastHiddenState(float[] pixelValues, int batch) =>
        Run(pixelValues, batch, (o, s) => (o.ToArray(), s));

    protected override float[][] Extract(ReadOnlySpan<float> output, long[] shape, int batch)
    {
        int tokens = (int)shape[1], dim = (int)shape[2];
        var result = new float[batch][];
        for (int b = 0; b < batch; b++) result[b] = output.Slice(b * tokens * dim, dim).ToArray();
        return result;
    }
}

/// <summary>CLIP vision with projection (e.g. clip-vit-base-patch32 vision_model export): <c>image_embeds</c> [B, D], not normalised.</summary>
public sealed class ClipImageEmbedder(string modelPath, ImagePreprocessor? preprocessor = null, SessionOptions? options = null)
    : OnnxImageEmbedder(modelPath, "CLIP vision", "image_embeds", 2, preprocessor ?? ClipPreprocessor.Create(), options)
{
    public override string Metric => "clip_i";

    protected override float[][] Extract(ReadOnlySpan<float> output, long[] shape, int batch)
    {
        int dim = (int)shape[1];
        var result = new float[batch][];
        for (int b = 0; b < batch; b++) result[b] = output.Slice(b * dim, dim).ToArray();
        return result;
    }
}
