using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>TorchSharp layers as ONNX ops, their weights named by the module path (e.g. "text_model.encoder.layers.0.mlp.fc1").</summary>
public static class OnnxModules
{
    /// <summary>A Linear layer on a 2-D input [B, in] (one Gemm).</summary>
    public static string Linear2d(this OnnxGraph g, Linear layer, string path, string x) =>
        g.Gemm(x, g.Weight(path + ".weight", layer.weight!), layer.bias is { } b ? g.Weight(path + ".bias", b) : g.Scalar(0f));

    /// <summary>A Linear layer on an input of any rank [..., in]: MatMul with the transposed weight, then the bias.</summary>
    public static string Linear(this OnnxGraph g, Linear layer, string path, string x)
    {
        var y = g.MatMul(x, g.Weight(path + ".weight_t", layer.weight!.t()));
        return layer.bias is { } b ? g.Add(y, g.Weight(path + ".bias", b)) : y;
    }

    /// <summary>A Linear layer given as an untyped module (the CLIP attention and MLP children are adapter-replaceable).</summary>
    public static string Linear(this OnnxGraph g, nn.Module<Tensor, Tensor> layer, string path, string x) =>
        g.Linear(layer as Linear ?? throw new NotSupportedException($"{path} is a {layer.GetType().Name}, not a plain Linear (merge or remove adapters before exporting)"), path, x);

    public static string Conv2d(this OnnxGraph g, Conv2d conv, string path, string x)
    {
        if (conv.padding_mode != TorchSharp.PaddingModes.Zeros || conv.padding_type is not null || conv.dilation.Any(d => d != 1))
            throw new NotSupportedException($"{path}: only zero padding given as numbers and dilation 1 are exported");
        var w = g.Weight(path + ".weight", conv.weight!);
        var b = conv.bias is { } bias ? g.Weight(path + ".bias", bias) : null;
        var padding = conv.padding!;   // set for numeric padding, which the check above requires
        long[] pads = [padding[0], padding[1], padding[0], padding[1]];
        return g.Conv(x, w, b, conv.kernel_size, conv.stride, pads, conv.groups);
    }

    public static string LayerNorm(this OnnxGraph g, LayerNorm norm, string path, string x) =>
        g.LayerNorm(x, g.Weight(path + ".weight", norm.weight!), g.Weight(path + ".bias", norm.bias!), norm.eps);
}
