using DiffusionPeft.Metrics;

namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>Undoes a metric's normalisation in the graph: (u/255 − mean)/std → 2·u/255 − 1, the [-1, 1] range the toy models take.</summary>
public static class PixelRange
{
    public static string FromNormalised(OnnxGraph g, string x, PreprocessSpec spec)
    {
        var (scale, shift) = Affine(spec);
        return g.Add(g.Mul(x, g.Constant(spec.Name + ".to_unit_scale", scale, 1, 3, 1, 1)), g.Constant(spec.Name + ".to_unit_shift", shift, 1, 3, 1, 1));
    }

    /// <summary>Per channel c: x·scale[c] + shift[c] maps the normalised value back to [-1, 1] (scale = 2·std, shift = 2·mean − 1).</summary>
    public static (float[] Scale, float[] Shift) Affine(PreprocessSpec spec) =>
        (spec.Std.Select(s => 2 * s).ToArray(), spec.Mean.Select(m => 2 * m - 1).ToArray());
}
