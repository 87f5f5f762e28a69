using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

/// <summary>ShapeAwareConv2d's matmul and im2col routes compute torch's conv2d, values and gradients, and keep its state-dict names.</summary>
public sealed class ShapeAwareConv2dTests
{
    public static TheoryData<int, int, int, int, int, int> Shapes => new()
    {
        // in, out, kernel, stride, padding, size
        { 6, 5, 1, 1, 0, 7 },    // pointwise → matmul
        { 6, 5, 3, 1, 1, 8 },    // 64 pixels → im2col (float32)
        { 6, 5, 3, 1, 1, 3 },    // 9 pixels → im2col
        { 6, 5, 3, 1, 1, 9 },    // 81 pixels → conv2d
        { 6, 5, 3, 2, 1, 8 },    // stride 2 → conv2d
        { 6, 5, 3, 2, 0, 8 },    // padding 0 → conv2d
    };

    [Theory, MemberData(nameof(Shapes))]
    public void MatchesConv2dAndItsGradients(int cin, int cout, int k, int stride, int padding, int size)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var conv = new ShapeAwareConv2d(cin, cout, k, stride, padding);
        Assert.Equal(["bias", "weight"], conv.state_dict().Keys.Order());
        var x = randn(2, cin, size, size + 1 - (size % 2)).requires_grad_(true);   // non-square where it can be
        var y = conv.forward(x);
        var w = conv.weight.detach().clone().requires_grad_(true);
        var b = conv.bias!.detach().clone().requires_grad_(true);
        var x2 = x.detach().clone().requires_grad_(true);
        var expected = nn.functional.conv2d(x2, w, b, strides: [stride, stride], padding: [padding, padding]);
        TensorAssert.Close(y, expected, 1e-5, 1e-5, "output");
        var g = randn_like(y);
        (y * g).sum().backward();
        (expected * g).sum().backward();
        TensorAssert.Close(x.grad!, x2.grad!, 1e-5, 1e-5, "dL/dx");
        TensorAssert.Close(conv.weight.grad!, w.grad!, 1e-4, 1e-5, "dL/dW");
        TensorAssert.Close(conv.bias.grad!, b.grad!, 1e-4, 1e-5, "dL/db");
    }

    [Fact]
    public void TheGemmRoutesAreForTheCpuOnly()
    {
        using var scope = NewDisposeScope();
        var pointwise = new ShapeAwareConv2d(6, 5, 1);
        var small = new ShapeAwareConv2d(6, 5, 3, padding: 1);
        Assert.True(pointwise.UsesGemmRoute(zeros(1, 6, 16, 16)));
        Assert.True(small.UsesGemmRoute(zeros(1, 6, 8, 8)));
        Assert.False(small.UsesGemmRoute(zeros(1, 6, 8, 8, ScalarType.BFloat16)));
        // Any other device (CUDA; meta stands in for it here) runs conv2d: cuDNN beats both routes on the GPU.
        var meta = new Device(DeviceType.META);
        Assert.False(pointwise.UsesGemmRoute(zeros(1, 6, 16, 16, device: meta)));
        Assert.False(small.UsesGemmRoute(zeros(1, 6, 8, 8, device: meta)));
    }

    [Fact]
    public void ConvertsWithTheModuleAndInitialisesAsTorchDoes()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var reference = nn.Conv2d(4, 3, 3, padding: 1);
        manual_seed(3);
        var conv = new ShapeAwareConv2d(4, 3, 3, padding: 1);
        Assert.True(conv.weight.eq(reference.weight!).all().item<bool>(), "same random draws as torch.nn.Conv2d");
        conv.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, conv.weight.dtype);
        Assert.Equal(ScalarType.Float64, conv.state_dict()["weight"].dtype);
        var x = randn(1, 4, 5, 5, ScalarType.Float64);
        TensorAssert.Close(conv.forward(x), nn.functional.conv2d(x, conv.weight, conv.bias, padding: [1, 1]), 1e-12, 1e-12, "float64 after to()");
    }
}
