namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>One operator of the graph (ONNX NodeProto, default domain).</summary>
public sealed record OnnxNode(string OpType, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, string Name, IReadOnlyList<OnnxAttribute> Attributes)
{
    internal ProtoMessage ToProto()
    {
        var m = new ProtoMessage();
        foreach (var i in Inputs) m.String(1, i);
        foreach (var o in Outputs) m.String(2, o);
        m.String(3, Name).String(4, OpType);
        foreach (var a in Attributes) m.Message(5, a.ToProto());
        return m;
    }
}
