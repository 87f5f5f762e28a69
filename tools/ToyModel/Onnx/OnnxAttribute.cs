namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>A node attribute (ONNX AttributeProto) of one of the kinds the exports use.</summary>
public sealed record OnnxAttribute
{
    private enum Kind { Float = 1, Int = 2, String = 3, Floats = 6, Ints = 7 }

    private readonly Kind _kind;
    private readonly float _float;
    private readonly long _int;
    private readonly string? _string;
    private readonly IReadOnlyList<float>? _floats;
    private readonly IReadOnlyList<long>? _ints;

    public string Name { get; }

    private OnnxAttribute(string name, Kind kind, float f = 0, long i = 0, string? s = null, IReadOnlyList<float>? floats = null, IReadOnlyList<long>? ints = null)
    {
        Name = name;
        _kind = kind;
        _float = f;
        _int = i;
        _string = s;
        _floats = floats;
        _ints = ints;
    }

    public static OnnxAttribute Of(string name, float value) => new(name, Kind.Float, f: value);
    public static OnnxAttribute Of(string name, long value) => new(name, Kind.Int, i: value);
    public static OnnxAttribute Of(string name, string value) => new(name, Kind.String, s: value);
    public static OnnxAttribute Of(string name, IReadOnlyList<float> values) => new(name, Kind.Floats, floats: values);
    public static OnnxAttribute Of(string name, IReadOnlyList<long> values) => new(name, Kind.Ints, ints: values);

    internal ProtoMessage ToProto()
    {
        var m = new ProtoMessage().String(1, Name).Int64(20, (long)_kind);
        return _kind switch
        {
            Kind.Float => m.Float(2, _float),
            Kind.Int => m.Int64(3, _int),
            Kind.String => m.Bytes(4, System.Text.Encoding.UTF8.GetBytes(_string!)),
            Kind.Floats => m.Floats(7, _floats!),
            _ => m.Int64s(8, _ints!),
        };
    }
}
