using System.Globalization;
using DiffusionPeft.Core.IO;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>
/// Builds an ONNX model (opset <see cref="Opset"/>) op by op: graph inputs and outputs, weights taken from TorchSharp
/// tensors, and the operators the toy evaluators need. Every op returns the name of its output, so a forward pass
/// reads like the module's own code. Computation stays float32; <see cref="OnnxWeightStorage.Float16"/> only stores
/// the weights as float16, each followed by a Cast that ONNX Runtime folds when it loads the model.
/// </summary>
public sealed class OnnxGraph(string name, OnnxWeightStorage storage = OnnxWeightStorage.Float32)
{
    public const int Opset = 17;
    /// <summary>IR version 8 is the one opset 17 was released with (ONNX 1.12).</summary>
    public const long IrVersion = 8;

    private readonly List<OnnxValueInfo> _inputs = [], _outputs = [];
    private readonly List<OnnxInitializer> _initializers = [];
    private readonly List<OnnxNode> _nodes = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _opCounts = new(StringComparer.Ordinal);

    public string Name { get; } = name;
    public OnnxWeightStorage Storage { get; } = storage;
    public IReadOnlyList<OnnxNode> Nodes => _nodes;
    public IReadOnlyList<OnnxInitializer> Initializers => _initializers;

    /// <summary>Stored weight values (after the float16 rounding where it applies).</summary>
    public long WeightCount => _initializers.Sum(i => i.Dims.Aggregate(1L, (a, b) => a * b));

    public string Input(string inputName, OnnxDataType type, params OnnxDim[] shape)
    {
        Claim(inputName);
        _inputs.Add(new OnnxValueInfo(inputName, type, shape));
        return inputName;
    }

    /// <summary>Declares <paramref name="value"/> a graph output named <paramref name="outputName"/> (through an Identity when the names differ).</summary>
    public void Output(string value, string outputName, OnnxDataType type, params OnnxDim[] shape)
    {
        if (value != outputName)
        {
            Claim(outputName);
            _nodes.Add(new OnnxNode("Identity", [value], [outputName], outputName + "_identity", []));
        }
        _outputs.Add(new OnnxValueInfo(outputName, type, shape));
    }

    /// <summary>A float weight, stored as the graph's <see cref="Storage"/> says; returns the name of its float32 value.</summary>
    public string Weight(string weightName, Tensor value)
    {
        using var scope = NewDisposeScope();
        var t = value.detach().cpu().contiguous();
        if (Storage == OnnxWeightStorage.Float32) return Initializer(weightName, OnnxDataType.Float, t.shape, t.to_type(ScalarType.Float32).bytes.ToArray());
        var half = Initializer(weightName + ".fp16", OnnxDataType.Float16, t.shape, t.to_type(ScalarType.Float16).contiguous().bytes.ToArray());
        return Node("Cast", [half], weightName, OnnxAttribute.Of("to", (long)OnnxDataType.Float));
    }

    /// <summary>A float32 constant (never stored as float16: normalisation constants, masks, scalars).</summary>
    public string Constant(string constantName, float[] values, params long[] dims)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return Initializer(constantName, OnnxDataType.Float, dims, bytes);
    }

    /// <summary>A float32 scalar, one initializer per distinct value.</summary>
    public string Scalar(float value)
    {
        var key = "f:" + value.ToString("R", CultureInfo.InvariantCulture);
        if (!_constants.TryGetValue(key, out var n)) _constants[key] = n = Constant(Fresh("scalar"), [value]);
        return n;
    }

    /// <summary>An int64 constant (shapes, axes, ids); a scalar when <paramref name="dims"/> is empty.</summary>
    public string Int64s(long[] values, params long[] dims)
    {
        var key = "i:" + string.Join(',', values) + ":" + string.Join(',', dims);
        if (_constants.TryGetValue(key, out var n)) return n;
        var bytes = new byte[values.Length * sizeof(long)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return _constants[key] = Initializer(Fresh("int64s"), OnnxDataType.Int64, dims, bytes);
    }

    private string Initializer(string initializerName, OnnxDataType type, IReadOnlyList<long> dims, byte[] raw)
    {
        Claim(initializerName);
        _initializers.Add(new OnnxInitializer(initializerName, type, dims.ToArray(), raw));
        return initializerName;
    }

    /// <summary>Adds a node with one output (named <paramref name="output"/>, or fresh) and returns the output's name.</summary>
    public string Node(string opType, IReadOnlyList<string> inputs, string? output = null, params OnnxAttribute[] attributes)
    {
        output ??= Fresh(opType);
        Claim(output);
        _nodes.Add(new OnnxNode(opType, inputs, [output], output + "_" + opType, attributes));
        return output;
    }

    public string Add(string a, string b) => Node("Add", [a, b]);
    public string Sub(string a, string b) => Node("Sub", [a, b]);
    public string Mul(string a, string b) => Node("Mul", [a, b]);
    public string Div(string a, string b) => Node("Div", [a, b]);
    public string MatMul(string a, string b) => Node("MatMul", [a, b]);
    public string Sigmoid(string x) => Node("Sigmoid", [x]);
    public string Erf(string x) => Node("Erf", [x]);

    /// <summary>a·bᵀ + c for 2-D a (a Linear layer: b is its [out, in] weight).</summary>
    public string Gemm(string a, string b, string c) => Node("Gemm", [a, b, c], null, OnnxAttribute.Of("transB", 1L));

    public string Conv(string x, string weight, string? bias, long[] kernel, long[] strides, long[] pads, long group = 1) =>
        Node("Conv", bias is null ? [x, weight] : [x, weight, bias], null, OnnxAttribute.Of("kernel_shape", kernel), OnnxAttribute.Of("strides", strides),
            OnnxAttribute.Of("pads", pads), OnnxAttribute.Of("dilations", [1L, 1L]), OnnxAttribute.Of("group", group));

    /// <summary>Average pooling without padding (so count_include_pad does not matter).</summary>
    public string AveragePool(string x, long kernel, long stride) =>
        Node("AveragePool", [x], null, OnnxAttribute.Of("kernel_shape", [kernel, kernel]), OnnxAttribute.Of("strides", [stride, stride]));

    public string GlobalAveragePool(string x) => Node("GlobalAveragePool", [x]);
    public string GlobalMaxPool(string x) => Node("GlobalMaxPool", [x]);
    public string Flatten(string x, long axis = 1) => Node("Flatten", [x], null, OnnxAttribute.Of("axis", axis));
    public string Concat(long axis, params string[] xs) => Node("Concat", xs, null, OnnxAttribute.Of("axis", axis));
    public string Reshape(string x, params long[] shape) => Node("Reshape", [x, Int64s(shape, shape.Length)]);
    public string Transpose(string x, params long[] perm) => Node("Transpose", [x], null, OnnxAttribute.Of("perm", perm));
    public string Unsqueeze(string x, params long[] axes) => Node("Unsqueeze", [x, Int64s(axes, axes.Length)]);
    public string Softmax(string x, long axis = -1) => Node("Softmax", [x], null, OnnxAttribute.Of("axis", axis));
    public string Cast(string x, OnnxDataType to) => Node("Cast", [x], null, OnnxAttribute.Of("to", (long)to));
    public string Equal(string a, string b) => Node("Equal", [a, b]);
    public string Gather(string data, string indices, long axis = 0) => Node("Gather", [data, indices], null, OnnxAttribute.Of("axis", axis));
    public string GatherND(string data, string indices, long batchDims) => Node("GatherND", [data, indices], null, OnnxAttribute.Of("batch_dims", batchDims));

    /// <summary>Index of the first maximum along <paramref name="axis"/> (int64).</summary>
    public string ArgMax(string x, long axis, bool keepDims) =>
        Node("ArgMax", [x], null, OnnxAttribute.Of("axis", axis), OnnxAttribute.Of("keepdims", keepDims ? 1L : 0L), OnnxAttribute.Of("select_last_index", 0L));

    /// <summary>LayerNormalization over the last axis (opset 17).</summary>
    public string LayerNorm(string x, string scale, string bias, double epsilon) =>
        Node("LayerNormalization", [x, scale, bias], null, OnnxAttribute.Of("axis", -1L), OnnxAttribute.Of("epsilon", (float)epsilon));

    /// <summary>Exact GELU, x·½·(1 + erf(x/√2)), as torch's default gelu.</summary>
    public string Gelu(string x) =>
        Mul(Mul(x, Add(Erf(Mul(x, Scalar((float)(1 / Math.Sqrt(2))))), Scalar(1f))), Scalar(0.5f));

    /// <summary>CLIP's quick_gelu, x·σ(1.702x).</summary>
    public string QuickGelu(string x) => Mul(x, Sigmoid(Mul(x, Scalar(1.702f))));

    public byte[] ToBytes()
    {
        var graph = new ProtoMessage();
        foreach (var n in _nodes) graph.Message(1, n.ToProto());
        graph.String(2, Name);
        foreach (var i in _initializers) graph.Message(5, i.ToProto());
        foreach (var i in _inputs) graph.Message(11, i.ToProto());
        foreach (var o in _outputs) graph.Message(12, o.ToProto());
        return new ProtoMessage()
            .Int64(1, IrVersion)
            .String(2, "dpeft")
            .String(3, typeof(OnnxGraph).Assembly.GetName().Version?.ToString() ?? "0")
            .Message(7, graph)
            .Message(8, new ProtoMessage().String(1, "").Int64(2, Opset))
            .ToBytes();
    }

    /// <summary>Writes the model atomically.</summary>
    public void Save(string path)
    {
        if (_outputs.Count == 0) throw new InvalidOperationException($"ONNX graph '{Name}' has no outputs");
        var bytes = ToBytes();
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    private string Fresh(string stem)
    {
        _opCounts.TryGetValue(stem, out int n);
        string candidate;
        do candidate = $"{stem}_{n++}"; while (_names.Contains(candidate));
        _opCounts[stem] = n;
        return candidate;
    }

    private void Claim(string valueName)
    {
        if (!_names.Add(valueName)) throw new ArgumentException($"ONNX graph '{Name}': the name '{valueName}' is used twice");
    }
}
