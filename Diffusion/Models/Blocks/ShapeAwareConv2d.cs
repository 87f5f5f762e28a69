using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// torch.nn.Conv2d (same parameter names, shapes and initialisation, so checkpoints load unchanged) that runs the
/// faster CPU kernel for the shape at hand, measured with <c>tools/Benchmarks -- ops</c>: a 1x1 convolution is one
/// matmul over [B, C, H·W] (1.1–1.9x oneDNN's direct kernel at SD's shapes, fp32 and bf16); a float32 3x3 stride-1
/// convolution on a map of at most 64 pixels (SD's 8x8 level) is im2col + matmul (1.4–1.5x: the direct kernel cannot
/// amortise its blocking over so few pixels). Everything else, and bf16 3x3 (oneDNN's AMX kernel wins), is conv2d.
/// On other devices every call is conv2d: on an H200 the routes made the bf16 SD 1.5 UNet forward 30 ms instead of
/// 19 ms (fp32 41 vs 38.5; ../shared/device/README.md), cuDNN being the faster kernel there.
/// </summary>
public sealed class ShapeAwareConv2d : nn.Module<Tensor, Tensor>
{
    private const long MaxGemmPixels = 64;

    /// <summary>Off: every call runs conv2d (benchmarks compare the two routes in one process). CPU only either way.</summary>
    public static bool UseGemmRoutes { get; set; } = true;
    private Parameter _weight;
    private Parameter? _bias;

    public int KernelSize { get; }
    public int Stride { get; }
    public int Padding { get; }

    public ShapeAwareConv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, bool hasBias = true)
        : base("Conv2d")
    {
        KernelSize = kernelSize;
        Stride = stride;
        Padding = padding;
        // torch's own layer initialises the tensors (kaiming-uniform, same random draws as before this class existed).
        var reference = nn.Conv2d(inChannels, outChannels, kernelSize, stride: stride, padding: padding, bias: hasBias, device: CPU);
        _weight = reference.weight!;
        _bias = reference.bias;
        register_parameter("weight", _weight);
        if (_bias is not null) register_parameter("bias", _bias);
    }

    /// <summary>[out, in, k, k]. Settable so Module.to(dtype/device) can replace it.</summary>
    public Parameter weight { get => _weight; set { _weight = value; ConditionallyRegisterParameter("weight", value); } }

    public Parameter? bias { get => _bias; set { _bias = value; ConditionallyRegisterParameter("bias", value); } }

    protected override void RegisterComponents() { }

    /// <summary>Whether this input takes the matmul (1x1) or im2col (small float32 3x3) route rather than conv2d.</summary>
    public bool UsesGemmRoute(Tensor x)
    {
        if (!UseGemmRoutes || x.device_type != DeviceType.CPU) return false;
        bool pointwise = KernelSize == 1 && Stride == 1 && Padding == 0;
        bool smallMap = KernelSize == 3 && Stride == 1 && Padding == 1 && x.shape[2] * x.shape[3] <= MaxGemmPixels && x.dtype == ScalarType.Float32;
        return pointwise || smallMap;
    }

    public override Tensor forward(Tensor x)
    {
        if (x.ndim != 4) throw new ArgumentException($"Conv2d expects [B, C, H, W], got [{string.Join(", ", x.shape)}]");
        if (!UsesGemmRoute(x))
            return nn.functional.conv2d(x, weight, bias, strides: [Stride, Stride], padding: [Padding, Padding]);
        long b = x.shape[0], h = x.shape[2], w = x.shape[3], cout = weight.shape[0];
        var columns = KernelSize == 1 ? x.reshape(b, x.shape[1], h * w) : nn.functional.unfold(x, 3, padding: 1);
        var y = weight.view(cout, -1).matmul(columns);
        if (bias is not null) y = y + bias.view(1, cout, 1);
        return y.view(b, cout, h, w);
    }
}
