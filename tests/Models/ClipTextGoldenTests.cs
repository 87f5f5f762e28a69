using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

/// <summary>transformers' CLIPTextModel (4.36) on every manifest case of kind clip_text.</summary>
[Trait("Category", "Golden")]
public sealed class ClipTextGoldenTests
{
    public static TheoryData<string> Cases => GoldenData.CasesOfKind("clip_text");

    private static CLIPTextModel LoadModel(string caseName)
    {
        var model = new CLIPTextModel(ClipTextConfig.Load(GoldenData.FileOf(caseName, "config")));
        using var weights = SafetensorsFile.Open(GoldenData.FileOf(caseName, "weights"));
        model.LoadWeights(weights);
        model.eval();
        return model;
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTransformers(string caseName)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var model = LoadModel(caseName);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        var ids = io.Read("input.input_ids");
        var result = model.Forward(ids, outputHiddenStates: true);
        var hs = result.HiddenStates!;
        Assert.Equal(model.Config.NumHiddenLayers + 1, hs.Count);

        var outputs = io.Entries.Keys.Where(n => n.StartsWith("output.", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(outputs);
        foreach (var name in outputs)
        {
            var key = name["output.".Length..];
            Tensor actual = key switch
            {
                "last_hidden_state" => result.LastHiddenState,
                "pooler_output" => result.PooledOutput,
                "penultimate_hidden_state" => hs[^2],
                "penultimate_hidden_state_final_layer_norm" => model.EncodePrompt(ids, clipSkip: 1),
                _ when key.StartsWith("hidden_states.", StringComparison.Ordinal) => hs[int.Parse(key["hidden_states.".Length..])],
                _ => throw new Xunit.Sdk.XunitException($"{caseName}: unknown golden output '{name}'"),
            };
            var (atol, rtol) = tol.For(name);
            TensorAssert.Close(actual, io.Read(name), atol, rtol, $"{caseName} {name}");
        }
        TensorAssert.Close(model.EncodePrompt(ids), result.LastHiddenState, 0, 0, $"{caseName} EncodePrompt(clip_skip 0)");
        TensorAssert.Close(model.forward(ids), result.LastHiddenState, 0, 0, $"{caseName} forward");
    }

    /// <summary>The is_casual fast path against the explicit additive mask transformers builds (all-ones padding mask).</summary>
    [Theory, MemberData(nameof(Cases))]
    public void CausalFlagEqualsExplicitMask(string caseName)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var model = LoadModel(caseName);
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var ids = io.Read("input.input_ids");
        var flag = model.Forward(ids).LastHiddenState;
        var explicitMask = model.Forward(ids, attentionMask: ones_like(ids)).LastHiddenState;
        Assert.True(TensorAssert.MaxAbsDiff(flag, explicitMask) <= 1e-6, $"is_casual vs explicit mask differ by {TensorAssert.MaxAbsDiff(flag, explicitMask):E2}");
    }

    [Theory, MemberData(nameof(Cases))]
    public void StateDictKeysEqualUpstream(string caseName)
    {
        using var model = new CLIPTextModel(ClipTextConfig.Load(GoldenData.FileOf(caseName, "config")));
        using var weights = SafetensorsFile.Open(GoldenData.FileOf(caseName, "weights"));
        Assert.Equal(weights.Entries.Keys.OrderBy(k => k, StringComparer.Ordinal), model.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal));
        // TorchSharp 0.107's named_buffers() does not list non-persistent buffers; ask the owner directly.
        Assert.True(model.text_model.embeddings.has_buffer("position_ids"));
    }

    /// <summary>Loading a folder (config.json + model.safetensors) in another dtype: float64 agrees with the float32 golden output.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void FromPretrainedInFloat64(string caseName)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"dpeft-clip-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(GoldenData.FileOf(caseName, "config"), Path.Combine(dir, "config.json"));
            File.Copy(GoldenData.FileOf(caseName, "weights"), Path.Combine(dir, "model.safetensors"));
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            using var model = CLIPTextModel.FromPretrained(dir, ScalarType.Float64, CPU);
            using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
            var output = model.Forward(io.Read("input.input_ids"));
            Assert.Equal(ScalarType.Float64, output.LastHiddenState.dtype);
            var tol = GoldenData.ToleranceOf(caseName);
            var (atol, rtol) = tol.For("output.last_hidden_state");
            TensorAssert.Close(output.LastHiddenState, io.Read("output.last_hidden_state"), atol, rtol, $"{caseName} float64");
            (atol, rtol) = tol.For("output.pooler_output");
            TensorAssert.Close(output.PooledOutput, io.Read("output.pooler_output"), atol, rtol, $"{caseName} float64 pooled");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
