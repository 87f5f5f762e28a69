using Google.Protobuf;

namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>
/// One protobuf message, built field by field on Google.Protobuf's wire encoder: enough of the format for ONNX's
/// messages (varints, strings, bytes, floats, nested messages) without generated classes.
/// </summary>
public sealed class ProtoMessage
{
    private readonly MemoryStream _buffer = new();
    private readonly CodedOutputStream _out;

    public ProtoMessage() => _out = new CodedOutputStream(_buffer, leaveOpen: true);

    public ProtoMessage Int64(int field, long value)
    {
        _out.WriteTag(field, WireFormat.WireType.Varint);
        _out.WriteInt64(value);
        return this;
    }

    public ProtoMessage Float(int field, float value)
    {
        _out.WriteTag(field, WireFormat.WireType.Fixed32);
        _out.WriteFloat(value);
        return this;
    }

    public ProtoMessage String(int field, string value)
    {
        _out.WriteTag(field, WireFormat.WireType.LengthDelimited);
        _out.WriteString(value);
        return this;
    }

    public ProtoMessage Bytes(int field, ReadOnlySpan<byte> value)
    {
        _out.WriteTag(field, WireFormat.WireType.LengthDelimited);
        _out.WriteBytes(ByteString.CopyFrom(value));
        return this;
    }

    public ProtoMessage Message(int field, ProtoMessage message) => Bytes(field, message.ToBytes());

    /// <summary>A repeated int64 field, one tagged value per element (onnx.proto is proto2, whose fields are unpacked).</summary>
    public ProtoMessage Int64s(int field, IEnumerable<long> values)
    {
        foreach (var v in values) Int64(field, v);
        return this;
    }

    public ProtoMessage Floats(int field, IEnumerable<float> values)
    {
        foreach (var v in values) Float(field, v);
        return this;
    }

    public byte[] ToBytes()
    {
        _out.Flush();
        return _buffer.ToArray();
    }
}
