using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.Tests.Golden;
using DiffusionPeft.Core.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Models;

public sealed class ClipTextModelTests
{
    private static readonly ClipTextConfig Tiny = new()
    {
        VocabSize = 50, HiddenSize = 8, IntermediateSize = 12, NumHiddenLayers = 2, NumAttentionHeads = 2, MaxPositionEmbeddings = 10,
    };

    [Fact]
    public void MisShapedAndMissingKeysAreListedInOneError()
    {
        using var model = new CLIPTextModel(Tiny);
        var tensors = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        tensors.Remove("text_model.encoder.layers.1.mlp.fc2.bias");
        tensors["text_model.encoder.layers.0.self_attn.q_proj.weight"] = zeros(8, 4);
        tensors["text_model.embeddings.position_ids"] = arange(10).unsqueeze(0); // old transformers saved it: tolerated
        tensors["text_model.extra.weight"] = zeros(3);
        var path = Path.Combine(Path.GetTempPath(), $"dpeft-clip-bad-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafetensorsWriter.Write(path, tensors, null);
            using var file = SafetensorsFile.Open(path);
            var ex = Assert.Throws<StateDictMismatchException>(() => model.LoadWeights(file));
            Assert.Equal(["text_model.encoder.layers.1.mlp.fc2.bias"], ex.Missing);
            Assert.Equal(["text_model.extra.weight"], ex.Unexpected);
            Assert.Single(ex.MisShaped);
            Assert.Contains("text_model.encoder.layers.0.self_attn.q_proj.weight", ex.MisShaped[0]);
            Assert.Contains(path, ex.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void PositionIdsAreNotPersistent()
    {
        using var model = new CLIPTextModel(Tiny);
        Assert.DoesNotContain("text_model.embeddings.position_ids", model.state_dict().Keys);
        Assert.Equal(2 + 2 + 16 * 2, model.state_dict().Count);
    }

    [Fact]
    public void ClipSkipTakesEarlierLayerThroughFinalNorm()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var model = new CLIPTextModel(Tiny);
        var ids = tensor(new long[] { 48, 3, 7, 49, 49, 49, 0, 0, 0, 0, 48, 5, 49, 49, 49, 49, 49, 49, 49, 49 }).view(2, 10);
        var all = model.Forward(ids, outputHiddenStates: true);
        var ln = model.text_model.final_layer_norm;
        TensorAssert.Close(model.EncodePrompt(ids, 1), ln.forward(all.HiddenStates![^2]), 1e-6, 0, "clip_skip 1");
        TensorAssert.Close(model.EncodePrompt(ids, 2), ln.forward(all.HiddenStates![0]), 1e-6, 0, "clip_skip 2");
        Assert.Throws<ArgumentOutOfRangeException>(() => model.EncodePrompt(ids, 3));
    }

    [Fact]
    public void ProjectionsAreReplaceableModules()
    {
        using var model = new CLIPTextModel(Tiny);
        var names = model.named_modules().Select(m => m.name).ToHashSet();
        foreach (var n in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
            Assert.Contains($"text_model.encoder.layers.1.self_attn.{n}", names);
        Assert.Contains("text_model.encoder.layers.0.mlp.fc1", names);
        Assert.Contains("text_model.encoder.layers.0.mlp.fc2", names);
        Assert.IsAssignableFrom<nn.Module<Tensor, Tensor>>(model.text_model.encoder.layers[0].self_attn.q_proj);
    }

    [Fact]
    public void UnsupportedActivationIsRejectedWithTheFileName()
    {
        var cfg = ConfigJson.Parse("""{"hidden_act": "relu", "hidden_size": 8, "num_attention_heads": 2}""", "/x/config.json");
        var ex = Assert.Throws<InvalidDataException>(() => ClipTextConfig.From(cfg));
        Assert.Contains("/x/config.json", ex.Message);
        Assert.Contains("relu", ex.Message);
    }

    /// <summary>A saved diffusers pipeline: its tokenizer folder and text encoder give the recorded prompt ids and embeddings.</summary>
    [Fact]
    public void DiffusersFolderTokenizerAndTextEncoderReproducePromptEmbeddings()
    {
        const string caseName = "tiny_sd15_diffusers";
        var model = Path.Combine(GoldenData.Dir, (string)GoldenData.Case(caseName)["files"]!["model_folder"]!);
        var config = ConfigJson.Load(GoldenData.FileOf(caseName, "config")).Root;
        var call = config["runs"]!["pndm"]!["call"]!;
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(model, "tokenizer"));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var encoder = CLIPTextModel.FromPretrained(Path.Combine(model, "text_encoder"));
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        foreach (var (kind, prompts) in new[] { ("prompt", call["prompt"]!), ("negative_prompt", call["negative_prompt"]!) })
        {
            var ids = cat(prompts.AsArray().Select(p => tensor(tokenizer.EncodeForModel((string)p!).InputIds).unsqueeze(0)).ToArray(), 0);
            Assert.Equal(io.Read($"input.{kind}_input_ids").data<long>().ToArray(), ids.data<long>().ToArray());
            var name = $"intermediate.{kind}_embeds";
            var (atol, rtol) = tol.For(name);
            TensorAssert.Close(encoder.EncodePrompt(ids), io.Read(name), atol, rtol, name);
        }
    }

    public static TheoryData<string> PipelineCases => GoldenData.CasesOfKind("pipeline");

    /// <summary>The tokenizer and text-encoder cases a pipeline case was built from give its recorded ids and prompt embeddings.</summary>
    [Theory, MemberData(nameof(PipelineCases))]
    public void PipelineCasePromptIdsAndEmbeddings(string caseName)
    {
        var pipeline = GoldenData.Case(caseName)["pipeline"]!;
        var components = pipeline["components"]!;
        var call = pipeline["call"]!;
        string tokCase = (string)components["tokenizer"]!, encCase = (string)components["text_encoder"]!;
        var cleanup = ((string?)components["tokenizer_text_cleanup"] ?? "").Contains("without ftfy") ? ClipTextCleanup.Basic : ClipTextCleanup.FtfyLike;
        var tokFiles = (System.Text.Json.Nodes.JsonObject)GoldenData.Case(tokCase)["files"]!;
        var options = ClipTokenizer.OptionsFromConfig(tokFiles.ContainsKey("tokenizer_config") ? GoldenData.FileOf(tokCase, "tokenizer_config") : null)
            with { Cleanup = cleanup };
        var tokenizer = ClipTokenizer.FromFiles(GoldenData.FileOf(tokCase, "vocab"), GoldenData.FileOf(tokCase, "merges"), options);

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var encoder = new CLIPTextModel(ClipTextConfig.Load(GoldenData.FileOf(encCase, "config")));
        using (var w = SafetensorsFile.Open(GoldenData.FileOf(encCase, "weights"))) encoder.LoadWeights(w);
        encoder.eval();
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        foreach (var kind in new[] { "prompt", "negative_prompt" })
        {
            var ids = cat(call[kind]!.AsArray().Select(p => tensor(tokenizer.EncodeForModel((string)p!).InputIds).unsqueeze(0)).ToArray(), 0);
            Assert.Equal(io.Read($"input.{kind}_input_ids").data<long>().ToArray(), ids.data<long>().ToArray());
            var name = $"intermediate.{kind}_embeds";
            var (atol, rtol) = tol.For(name);
            TensorAssert.Close(encoder.EncodePrompt(ids), io.Read(name), atol, rtol, $"{caseName} {name}");
        }
    }
}
