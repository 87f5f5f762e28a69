using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

[Trait("Category", "Golden")]
public sealed class UNetGoldenTests
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("unet");

    [Theory, MemberData(nameof(Cases))]
    public void MatchesDiffusers(string caseName)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var model = new UNet2DConditionModel(UNet2DConditionConfig.Load(GoldenData.FileOf(caseName, "config")));
        model.LoadWeights(GoldenData.FileOf(caseName, "weights"));
        model.eval();
        using var io = new GoldenIo(caseName);

        var sample = io.Read("input.sample");
        var context = io.Read("input.encoder_hidden_states");
        var debug = new Dictionary<string, Tensor>();
        var output = model.Forward(sample, io.Read("input.timestep"), context, (name, t) => debug[name] = t);
        io.Check(output, "output.sample");

        var debugKeys = io.Names.Where(k => k.StartsWith("debug.", StringComparison.Ordinal)).ToList();
        foreach (var key in debugKeys)
        {
            var name = key["debug.".Length..];
            Assert.True(debug.ContainsKey(name), $"{caseName}: the model reported no intermediate '{name}'");
            io.Check(debug[name], key);
        }

        if (io.Contains("input.timestep_float") && io.Contains("output.sample_timestep_float"))
            io.Check(model.Forward(sample, io.Read("input.timestep_float"), context), "output.sample_timestep_float");
    }
}
