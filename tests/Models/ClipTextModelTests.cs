using System.Text.Json.Nodes;
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

    public static TheoryData<string> FolderCases => GoldenData.CasesOfKind("diffusers_folder");

    /// <summary>A saved diffusers pipeline: its tokenizer folder and text encoder give every run's recorded prompt ids and embeddings.</summary>
    [Theory, MemberData(nameof(FolderCases)), Trait("Category", "Golden")]
    public void DiffusersFolderTokenizerAndTextEncoderReproducePromptEmbeddings(string caseName)
    {
        var folder = GoldenFolderCase.Load(caseName);
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(folder.ModelFolder, "tokenizer"), folder.Cleanup);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var encoder = CLIPTextModel.FromPretrained(Path.Combine(folder.ModelFolder, "text_encoder"));
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        var tol = GoldenData.ToleranceOf(caseName);
        foreach (var (runName, run) in folder.Runs)
            CheckPromptIdsAndEmbeddings(tokenizer, encoder, (JsonObject)run["call"]!, io, tol, $"{caseName} run {runName}",
                $"input.{runName}.", $"intermediate.{runName}.");
    }

    public static TheoryData<string> PipelineCases => GoldenData.CasesOfKind("pipeline");

    /// <summary>The tokenizer (with the case's kwargs) and text-encoder cases a pipeline case was built from give its recorded ids and prompt embeddings.</summary>
    [Theory, MemberData(nameof(PipelineCases)), Trait("Category", "Golden")]
    public void PipelineCasePromptIdsAndEmbeddings(string caseName)
    {
        var pipeline = GoldenData.Case(caseName)["pipeline"]!;
        var components = pipeline["components"]!;
        string encCase = (string)components["text_encoder"]!;
        var where = $"{caseName} pipeline.components";
        var tokenizer = GoldenTokenizerSettings.FromCase((string)components["tokenizer"]!, components["tokenizer_kwargs"],
            GoldenTokenizerSettings.Cleanup(components["tokenizer_text_cleanup"], where), where);

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var encoder = new CLIPTextModel(ClipTextConfig.Load(GoldenData.FileOf(encCase, "config")));
        using (var w = SafetensorsFile.Open(GoldenData.FileOf(encCase, "weights"))) encoder.LoadWeights(w);
        encoder.eval();
        using var io = SafetensorsFile.Open(GoldenData.FileOf(caseName, "io"));
        CheckPromptIdsAndEmbeddings(tokenizer, encoder, (JsonObject)pipeline["call"]!, io, GoldenData.ToleranceOf(caseName), caseName, "input.", "intermediate.");
    }

    /// <summary>
    /// The call's prompts and negative prompts ("" where none is given) tokenized and encoded, against the recorded ids and
    /// embeddings: under the run's own prefixes where the io holds them there, else the shared "input." / "intermediate." ones.
    /// </summary>
    private static void CheckPromptIdsAndEmbeddings(ClipTokenizer tokenizer, CLIPTextModel encoder, JsonObject call, SafetensorsFile io, Tolerance tol,
        string what, string inputPrefix, string embedsPrefix)
    {
        var prompts = call["prompt"]!.AsArray().Select(p => (string)p!).ToList();
        foreach (var kind in new[] { "prompt", "negative_prompt" })
        {
            var texts = kind == "prompt" ? prompts
                : call["negative_prompt"] is JsonArray n ? n.Select(p => (string?)p ?? "").ToList() : prompts.Select(_ => "").ToList();
            var ids = cat(texts.Select(p => tensor(tokenizer.EncodeForModel(p).InputIds).unsqueeze(0)).ToArray(), 0);
            var idsName = io.Contains($"{inputPrefix}{kind}_input_ids") ? $"{inputPrefix}{kind}_input_ids" : $"input.{kind}_input_ids";
            Assert.True(io.Contains(idsName), $"{what}: no {idsName}");
            Assert.Equal(io.Read(idsName).data<long>().ToArray(), ids.data<long>().ToArray());
            var name = io.Contains($"{embedsPrefix}{kind}_embeds") ? $"{embedsPrefix}{kind}_embeds" : $"intermediate.{kind}_embeds";
            Assert.True(io.Contains(name), $"{what}: no {name}");
            var (atol, rtol) = tol.For(name);
            TensorAssert.Close(encoder.EncodePrompt(ids), io.Read(name), atol, rtol, $"{what} {name}");
        }
    }
}
