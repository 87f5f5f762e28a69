using DiffusionPeft.Adapters;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Adapters;

/// <summary>Activation checkpointing of the UNet's transformer blocks changes memory, not numbers.</summary>
[Trait("Category", "Golden")]
public sealed class ActivationCheckpointTests
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("unet");

    [Theory, MemberData(nameof(Cases))]
    public void CheckpointedTrainingGivesTheSameLossAndGradients(string caseName)
    {
        using var scope = NewDisposeScope();
        var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(GoldenData.FileOf(caseName, "config")));
        unet.LoadWeights(GoldenData.FileOf(caseName, "weights"));
        manual_seed(5);
        var report = AdapterInjector.Inject(unet, new AdapterOptions { Method = AdapterMethod.Lora, Rank = 4, Alpha = 4 }, InjectionTargets.UNetAttention, "unet");
        using (no_grad())
            foreach (var l in report.Layers) foreach (var p in l.Layer.AdapterParameters()) p.Tensor.copy_(randn_like(p.Tensor) * 0.1);
        var parameters = report.Layers.SelectMany(l => l.Layer.AdapterParameters()).Select(p => p.Tensor).ToList();
        unet.train();
        var sample = randn(2, unet.Config.InChannels, unet.Config.SampleSize, unet.Config.SampleSize, generator: new Generator(1));
        var context = randn(2, 7, unet.Config.CrossAttentionDim[0], generator: new Generator(2));
        var t = tensor(new long[] { 10, 700 });

        (double Loss, Tensor[] Grads) Step(bool checkpointing)
        {
            unet.GradientCheckpointing = checkpointing;
            foreach (var p in parameters) p.grad?.zero_();
            var loss = unet.forward(sample, t, context).pow(2).mean();
            loss.backward();
            return (loss.item<float>(), parameters.Select(p => p.grad!.clone()).ToArray());
        }

        var plain = Step(false);
        var checkpointed = Step(true);
        Assert.True(unet.GradientCheckpointing);
        Assert.Equal(plain.Loss, checkpointed.Loss, 6);
        Assert.Contains(plain.Grads, g => g.abs().max().item<float>() > 0);
        for (int i = 0; i < parameters.Count; i++)
            TensorAssert.Close(checkpointed.Grads[i], plain.Grads[i], 1e-7, 1e-4, $"gradient of adapter tensor {i}");
    }
}
