using DiffusionPeft.Diffusion.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel.Onnx;

/// <summary>
/// The toy CLIP's text side as a CLIP text export: <c>input_ids</c> int64 [B, L] (L = the context,
/// max_position_embeddings) → <c>text_embeds</c> [B, E], not normalised. The graph is <see cref="CLIPTextModel"/>
/// op for op (token + position embeddings, pre-norm layers with causal attention, the MLP's activation, final
/// LayerNorm), the pooled state at the first EOS id (the first largest id for the legacy eos_token_id 2), then
/// text_projection.
/// </summary>
public static class ToyClipTextOnnx
{
    public const string InputName = "input_ids", OutputName = "text_embeds";

    public static OnnxGraph Build(CLIPTextModel text, Linear projection, OnnxWeightStorage storage = OnnxWeightStorage.Float32)
    {
        var config = text.Config;
        var tm = text.text_model;
        int length = config.MaxPositionEmbeddings, width = config.HiddenSize, heads = config.NumAttentionHeads;
        var g = new OnnxGraph("toy-clip-text", storage);
        var ids = g.Input(InputName, OnnxDataType.Int64, "batch", length);

        var tokens = g.Gather(g.Weight("text_model.embeddings.token_embedding.weight", tm.embeddings.token_embedding.weight!), ids);
        var x = g.Add(tokens, g.Weight("text_model.embeddings.position_embedding.weight", tm.embeddings.position_embedding.weight!.narrow(0, 0, length).unsqueeze(0)));
        var mask = g.Constant("causal_mask", CausalMask(length), 1, 1, length, length);
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            var layer = tm.encoder.layers[i];
            var path = $"text_model.encoder.layers.{i}";
            x = g.Add(x, Attention(g, layer.self_attn, path + ".self_attn", g.LayerNorm(layer.layer_norm1, path + ".layer_norm1", x), mask, heads, width));
            var h = g.Linear(layer.mlp.fc1, path + ".mlp.fc1", g.LayerNorm(layer.layer_norm2, path + ".layer_norm2", x));
            h = config.HiddenAct == "quick_gelu" ? g.QuickGelu(h) : g.Gelu(h);
            x = g.Add(x, g.Linear(layer.mlp.fc2, path + ".mlp.fc2", h));
        }
        x = g.LayerNorm(tm.final_layer_norm, "text_model.final_layer_norm", x);

        // pooler_output: the first position of the EOS id (legacy configs with eos_token_id 2: of the largest id).
        var score = config.EosTokenId == 2 ? g.Cast(ids, OnnxDataType.Float) : g.Cast(g.Equal(ids, g.Int64s([config.EosTokenId])), OnnxDataType.Float);
        var pooled = g.GatherND(x, g.ArgMax(score, 1, keepDims: true), batchDims: 1);
        var embeds = g.MatMul(pooled, g.Weight("text_projection.weight_t", projection.weight!.t()));
        g.Output(embeds, OutputName, OnnxDataType.Float, "batch", projection.out_features);
        return g;
    }

    private static string Attention(OnnxGraph g, ClipAttention attention, string path, string x, string mask, int heads, int width)
    {
        int headDim = width / heads;
        string Heads(string t, params long[] perm) => g.Transpose(g.Reshape(t, 0, 0, heads, headDim), perm);
        var q = Heads(g.Linear(attention.q_proj, path + ".q_proj", x), 0, 2, 1, 3);
        var kT = Heads(g.Linear(attention.k_proj, path + ".k_proj", x), 0, 2, 3, 1);
        var v = Heads(g.Linear(attention.v_proj, path + ".v_proj", x), 0, 2, 1, 3);
        var scores = g.Add(g.Mul(g.MatMul(q, kT), g.Scalar((float)(1 / Math.Sqrt(headDim)))), mask);
        var context = g.MatMul(g.Softmax(scores, -1), v);
        return g.Linear(attention.out_proj, path + ".out_proj", g.Reshape(g.Transpose(context, 0, 2, 1, 3), 0, 0, width));
    }

    /// <summary>Additive [L, L] mask: 0 where a key is at or before the query, float.MinValue after it (as transformers).</summary>
    private static float[] CausalMask(int length)
    {
        var m = new float[length * length];
        for (int q = 0; q < length; q++)
            for (int k = q + 1; k < length; k++) m[q * length + k] = float.MinValue;
        return m;
    }
}
