using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Schedulers;

/// <summary>The reader of a schedulers case's model_function: the forms a manifest may state, and clear refusals.</summary>
public sealed class GoldenModelFunctionTests
{
    [Theory]
    [InlineData("model_output = 0.9 * model_input + 0.05 * (t / 1000), where model_input = scheduler.scale_model_input(latent, t)", 0.9, 0.05 / 1000, 0)]
    [InlineData("model_output = 1.1 * model_input - 0.2 * (t / 500)", 1.1, -0.2 / 500, 0)]
    [InlineData("model_output = model_input * 0.75 + t / 2e3 + 0.01; the same formula is used as epsilon or as v", 0.75, 1 / 2e3, 0.01)]
    [InlineData("model_output = -(0.5 * model_input) + 3 * t / 1000 where t is a float", -0.5, 3.0 / 1000, 0)]
    [InlineData("0.9*model_input+0.05*(t/1000)", 0.9, 0.05 / 1000, 0)]
    [InlineData("model_output = 2 * (model_input + t / 4)", 2, 0.5, 0)]
    public void ReadsAffineForms(string text, double input, double timestep, double constant)
    {
        var f = GoldenModelFunction.Parse(text, "test");
        Assert.Equal(input, f.InputCoefficient, 12);
        Assert.Equal(timestep, f.TimestepCoefficient, 12);
        Assert.Equal(constant, f.Constant, 12);
    }

    [Fact]
    public void AppliesTheFunctionToATensor()
    {
        var f = GoldenModelFunction.Parse("model_output = 0.8 * model_input + 0.1 * (t / 100)", "test");
        using var x = tensor(new[] { 1.0, -2.0 });
        Assert.Equal(new[] { 0.8 + 0.1 * 3, -1.6 + 0.1 * 3 }, f.Apply(x, 300).data<double>().ToArray(), (a, b) => Math.Abs(a - b) < 1e-12);
    }

    [Theory]
    [InlineData("model_output = model_input * model_input", "not affine")]
    [InlineData("model_output = 0.9 * sample + 0.05 * t", "unknown name")]
    [InlineData("model_output = 0.9 * model_input / t", "not a constant")]
    [InlineData("model_output = 0.05 * t", "does not depend on model_input")]
    [InlineData("model_output = 0.9 * (model_input + t", "not closed")]
    [InlineData("eps = 0.9 * model_input", "not model_output")]
    [InlineData("a neural network", "unknown name")]
    public void RefusesWhatItCannotReadWithAClearMessage(string text, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => GoldenModelFunction.Parse(text, "schedulers model_function"));
        Assert.Contains("schedulers model_function", ex.Message);
        Assert.Contains(text, ex.Message);
        Assert.Contains(reason, ex.Message);
    }
}
