using TorchSharp;

namespace DiffusionPeft.Diffusion.IO;

public enum SafetensorsDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL }

public static class SafetensorsDTypes
{
    public static bool TryParse(string s, out SafetensorsDType dtype) => s switch
    {
        "F64" => Set(SafetensorsDType.F64, out dtype),
        "F32" => Set(SafetensorsDType.F32, out dtype),
        "F16" => Set(SafetensorsDType.F16, out dtype),
        "BF16" => Set(SafetensorsDType.BF16, out dtype),
        "I64" => Set(SafetensorsDType.I64, out dtype),
        "I32" => Set(SafetensorsDType.I32, out dtype),
        "I16" => Set(SafetensorsDType.I16, out dtype),
        "I8" => Set(SafetensorsDType.I8, out dtype),
        "U8" => Set(SafetensorsDType.U8, out dtype),
        "BOOL" => Set(SafetensorsDType.BOOL, out dtype),
        _ => Set(default, out dtype, false),
    };

    private static bool Set(SafetensorsDType v, out SafetensorsDType dtype, bool ok = true) { dtype = v; return ok; }

    public static int ElementSize(this SafetensorsDType d) => d switch
    {
        SafetensorsDType.F64 or SafetensorsDType.I64 => 8,
        SafetensorsDType.F32 or SafetensorsDType.I32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.I16 => 2,
        _ => 1,
    };

    public static torch.ScalarType ToScalarType(this SafetensorsDType d) => d switch
    {
        SafetensorsDType.F64 => torch.ScalarType.Float64,
        SafetensorsDType.F32 => torch.ScalarType.Float32,
        SafetensorsDType.F16 => torch.ScalarType.Float16,
        SafetensorsDType.BF16 => torch.ScalarType.BFloat16,
        SafetensorsDType.I64 => torch.ScalarType.Int64,
        SafetensorsDType.I32 => torch.ScalarType.Int32,
        SafetensorsDType.I16 => torch.ScalarType.Int16,
        SafetensorsDType.I8 => torch.ScalarType.Int8,
        SafetensorsDType.U8 => torch.ScalarType.Byte,
        SafetensorsDType.BOOL => torch.ScalarType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(d)),
    };

    public static SafetensorsDType FromScalarType(torch.ScalarType t) => t switch
    {
        torch.ScalarType.Float64 => SafetensorsDType.F64,
        torch.ScalarType.Float32 => SafetensorsDType.F32,
        torch.ScalarType.Float16 => SafetensorsDType.F16,
        torch.ScalarType.BFloat16 => SafetensorsDType.BF16,
        torch.ScalarType.Int64 => SafetensorsDType.I64,
        torch.ScalarType.Int32 => SafetensorsDType.I32,
        torch.ScalarType.Int16 => SafetensorsDType.I16,
        torch.ScalarType.Int8 => SafetensorsDType.I8,
        torch.ScalarType.Byte => SafetensorsDType.U8,
        torch.ScalarType.Bool => SafetensorsDType.BOOL,
        _ => throw new NotSupportedException($"dtype {t} has no safetensors equivalent"),
    };
}
