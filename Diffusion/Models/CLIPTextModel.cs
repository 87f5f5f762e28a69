using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>transformers' CLIPTextConfig (the keys CLIPTextModel uses; projection_dim and the generic ones are ignored).</summary>
public sealed record ClipTextConfig
{
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 512;
    public int IntermediateSize { get; init; } = 2048;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 8;
    public int MaxPositionEmbeddings { get; init; } = 77;
    /// <summary>"quick_gelu" (OpenAI CLIP, SD 1.x) or "gelu" (OpenCLIP, SD 2.x).</summary>
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    public int PadTokenId { get; init; } = 1;
    public int BosTokenId { get; init; } = 49406;
    /// <summary>2 selects the legacy pooling rule (argmax of the ids), as in the real SD 1.x config.</summary>
    public int EosTokenId { get; init; } = 49407;

    public static ClipTextConfig Load(string configJsonPath) => From(ConfigJson.Load(configJsonPath));

    /// <summary>Reads a CLIPTextModel config.json, or the text_config of a full CLIPModel config.</summary>
    public static ClipTextConfig From(ConfigJson cfg)
    {
        if (cfg.Root["text_config"] is System.Text.Json.Nodes.JsonObject text) cfg = new ConfigJson(cfg.Source + " (text_config)", text);
        var d = new ClipTextConfig();
        var c = new ClipTextConfig
        {
            VocabSize = cfg.Int("vocab_size", d.VocabSize),
            HiddenSize = cfg.Int("hidden_size", d.HiddenSize),
            IntermediateSize = cfg.Int("intermediate_size", d.IntermediateSize),
            NumHiddenLayers = cfg.Int("num_hidden_layers", d.NumHiddenLayers),
            NumAttentionHeads = cfg.Int("num_attention_heads", d.NumAttentionHeads),
            MaxPositionEmbeddings = cfg.Int("max_position_embeddings", d.MaxPositionEmbeddings),
            HiddenAct = cfg.String("hidden_act", d.HiddenAct),
            LayerNormEps = cfg.Double("layer_norm_eps", d.LayerNormEps),
            PadTokenId = cfg.Int("pad_token_id", d.PadTokenId),
            BosTokenId = cfg.Int("bos_token_id", d.BosTokenId),
            EosTokenId = cfg.Int("eos_token_id", d.EosTokenId),
        };
        c.Validate(cfg.Source);
        return c;
    }

    /// <summary>The config.json transformers writes for a CLIPTextModel (what <see cref="From"/> reads back to an equal config).</summary>
    public System.Text.Json.Nodes.JsonObject ToJson() => new()
    {
        ["architectures"] = ConfigJson.Array(["CLIPTextModel"]),
        ["model_type"] = "clip_text_model",
        ["vocab_size"] = VocabSize,
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["num_attention_heads"] = NumAttentionHeads,
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["hidden_act"] = HiddenAct,
        ["layer_norm_eps"] = LayerNormEps,
        ["pad_token_id"] = PadTokenId,
        ["bos_token_id"] = BosTokenId,
        ["eos_token_id"] = EosTokenId,
        ["torch_dtype"] = "float32",
    };

    public void Validate(string source = "<config>")
    {
        var v = new ConfigChecks(source);
        v.InRange("hidden_size", HiddenSize, 1, ConfigChecks.MaxWidth);
        v.InRange("num_attention_heads", NumAttentionHeads, 1, ConfigChecks.MaxWidth);
        v.InRange("intermediate_size", IntermediateSize, 1, 4 * ConfigChecks.MaxWidth);
        v.InRange("num_hidden_layers", NumHiddenLayers, 1, ConfigChecks.MaxDepth);
        v.InRange("max_position_embeddings", MaxPositionEmbeddings, 1, ConfigChecks.MaxWidth);
        v.InRange("vocab_size", VocabSize, 1, 1 << 24);
        v.InRange("pad_token_id", PadTokenId, 0, int.MaxValue);
        v.InRange("bos_token_id", BosTokenId, 0, int.MaxValue);
        v.InRange("eos_token_id", EosTokenId, 0, int.MaxValue);
        v.Finite("layer_norm_eps", LayerNormEps, 0, minExclusive: true);
        v.Require(HiddenAct is "quick_gelu" or "gelu", "hidden_act", $"'{HiddenAct}' is not supported (quick_gelu or gelu)");
        v.ThrowIfAny();
        v.Require(HiddenSize % NumAttentionHeads == 0, "hidden_size", $"{HiddenSize} must be a multiple of num_attention_heads {NumAttentionHeads}");
        v.ThrowIfAny();
    }

    /// <summary>A lower bound on the parameter count (embeddings, attention and MLP matrices).</summary>
    public double MinimumParameters()
    {
        double h = HiddenSize;
        return (double)VocabSize * h + (double)MaxPositionEmbeddings * h + NumHiddenLayers * (4 * h * h + 2 * h * IntermediateSize);
    }
}

/// <summary>Outputs of <see cref="CLIPTextModel.Forward"/>; HiddenStates (embeddings + each layer, before final_layer_norm) only on request.</summary>
public sealed record ClipTextModelOutput(Tensor LastHiddenState, Tensor PooledOutput, IReadOnlyList<Tensor>? HiddenStates);

/// <summary>
/// transformers' CLIPTextModel (4.36): token + position embeddings, pre-norm transformer layers under a causal
/// mask, final LayerNorm. Module names equal the state-dict keys (text_model.encoder.layers.N.self_attn.q_proj...).
/// </summary>
public sealed class CLIPTextModel : nn.Module<Tensor, Tensor>
{
    public readonly ClipTextTransformer text_model;

    public ClipTextConfig Config { get; }

    public CLIPTextModel(ClipTextConfig config) : base(nameof(CLIPTextModel))
    {
        config.Validate();
        Config = config;
        text_model = new ClipTextTransformer(config);
        RegisterComponents();
    }

    /// <summary>last_hidden_state for input ids [B, S] (causal mask only, as Stable Diffusion calls it).</summary>
    public override Tensor forward(Tensor inputIds) => text_model.Run(inputIds, null, false, Config.NumHiddenLayers).LastHiddenState;

    /// <param name="attentionMask">Optional [B, S] padding mask (1 = keep), added to the causal mask as transformers does.</param>
    public ClipTextModelOutput Forward(Tensor inputIds, Tensor? attentionMask = null, bool outputHiddenStates = false)
    {
        var run = text_model.Run(inputIds, attentionMask, outputHiddenStates, Config.NumHiddenLayers);
        return new ClipTextModelOutput(run.LastHiddenState, Pool(run.LastHiddenState, inputIds), run.HiddenStates);
    }

    /// <summary>
    /// The prompt embeddings diffusers' encode_prompt takes: clip_skip 0 → last_hidden_state; clip_skip k ≥ 1 →
    /// final_layer_norm(hidden_states[-(k+1)]) (k = 1 is the penultimate layer). Layers after it are not run.
    /// </summary>
    public Tensor EncodePrompt(Tensor inputIds, int clipSkip = 0, Tensor? attentionMask = null)
    {
        if (clipSkip < 0 || clipSkip > Config.NumHiddenLayers)
            throw new ArgumentOutOfRangeException(nameof(clipSkip), $"clip_skip must be in 0..{Config.NumHiddenLayers}, got {clipSkip}.");
        return text_model.Run(inputIds, attentionMask, false, Config.NumHiddenLayers - clipSkip).LastHiddenState;
    }

    /// <summary>pooler_output: the final state at the EOS position (legacy eos_token_id 2: the first maximum id).</summary>
    private Tensor Pool(Tensor lastHiddenState, Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var ids = inputIds.to(lastHiddenState.device).to_type(ScalarType.Int32);
        var index = Config.EosTokenId == 2 ? ids.argmax(-1) : ids.eq(Config.EosTokenId).to_type(ScalarType.Int32).argmax(-1);
        long b = lastHiddenState.shape[0], d = lastHiddenState.shape[2];
        return lastHiddenState.gather(1, index.view(b, 1, 1).expand(b, 1, d)).squeeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>Loads strictly by state-dict key; a stray <c>text_model.embeddings.position_ids</c> (older transformers saved it) is ignored.</summary>
    public void LoadWeights(ITensorSource source, string prefix = "") =>
        StateDictLoader.Load(this, source, prefix, key => key == prefix + "text_model.embeddings.position_ids");

    /// <summary>A transformers text-encoder folder: config.json + model[.variant].safetensors (or shards), see <see cref="ComponentWeights"/>.</summary>
    public static CLIPTextModel FromPretrained(string folder, ScalarType dtype = ScalarType.Float32, Device? device = null, string? variant = null) =>
        PretrainedComponent.Load(folder, dtype, device, variant, ClipTextConfig.Load, c => c.MinimumParameters(), c => new CLIPTextModel(c), (m, w) => m.LoadWeights(w));
}

/// <summary>transformers' CLIPTextTransformer: embeddings, encoder, final_layer_norm.</summary>
public sealed class ClipTextTransformer : nn.Module
{
    public readonly ClipTextEmbeddings embeddings;
    public readonly ClipEncoder encoder;
    public readonly LayerNorm final_layer_norm;

    public ClipTextTransformer(ClipTextConfig config) : base(nameof(ClipTextTransformer))
    {
        embeddings = new ClipTextEmbeddings(config);
        encoder = new ClipEncoder(config);
        final_layer_norm = Layers.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    /// <summary>Runs the first <paramref name="layers"/> encoder layers, then final_layer_norm.</summary>
    internal (Tensor LastHiddenState, IReadOnlyList<Tensor>? HiddenStates) Run(Tensor inputIds, Tensor? attentionMask, bool keepHiddenStates, int layers)
    {
        if (inputIds.ndim != 2) throw new ArgumentException($"input_ids must be [batch, sequence], got [{string.Join(", ", inputIds.shape)}].");
        var ids = inputIds.to(ScalarType.Int64, embeddings.token_embedding.weight!.device); // ids may come from the CPU tokenizer
        var hidden = embeddings.forward(ids);
        var mask = attentionMask is null ? null : ClipAttention.CausalPaddingMask(attentionMask, hidden.dtype, hidden.device);
        var states = keepHiddenStates ? new List<Tensor> { hidden } : null;
        for (int i = 0; i < layers; i++)
        {
            hidden = encoder.layers[i].forward(hidden, mask);
            states?.Add(hidden);
        }
        return (final_layer_norm.forward(hidden), states);
    }
}

/// <summary>token_embedding(ids) + position_embedding(position_ids); position_ids is a non-persistent buffer.</summary>
public sealed class ClipTextEmbeddings : nn.Module<Tensor, Tensor>
{
    public readonly Embedding token_embedding;
    public readonly Embedding position_embedding;

    public ClipTextEmbeddings(ClipTextConfig config) : base(nameof(ClipTextEmbeddings))
    {
        token_embedding = Layers.Embedding(config.VocabSize, config.HiddenSize);
        position_embedding = Layers.Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        register_module(nameof(token_embedding), token_embedding);
        register_module(nameof(position_embedding), position_embedding);
        register_buffer("position_ids", arange(config.MaxPositionEmbeddings, dtype: ScalarType.Int64, device: CPU).unsqueeze(0), persistent: false);
    }

    public override Tensor forward(Tensor inputIds)
    {
        long seq = inputIds.shape[^1];
        long max = position_embedding.weight!.shape[0];
        if (seq > max) throw new ArgumentException($"sequence length {seq} exceeds max_position_embeddings {max}.");
        using var scope = NewDisposeScope();
        // to(dtype) leaves the int64 buffer alone; moving it to the ids' device is a no-op when it already is there.
        var positionIds = get_buffer("position_ids")!.narrow(1, 0, seq).to(ScalarType.Int64, inputIds.device);
        return (token_embedding.forward(inputIds) + position_embedding.forward(positionIds)).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers' CLIPEncoder: the numbered layers (text_model.encoder.layers.N).</summary>
public sealed class ClipEncoder : nn.Module
{
    public readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(ClipTextConfig config) : base(nameof(ClipEncoder))
    {
        layers = new ModuleList<ClipEncoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new ClipEncoderLayer(config)).ToArray());
        RegisterComponents();
    }
}

/// <summary>Pre-norm block: h + self_attn(layer_norm1(h)), then h + mlp(layer_norm2(h)).</summary>
public sealed class ClipEncoderLayer : nn.Module<Tensor, Tensor?, Tensor>
{
    public readonly ClipAttention self_attn;
    public readonly LayerNorm layer_norm1;
    public readonly ClipMlp mlp;
    public readonly LayerNorm layer_norm2;

    public ClipEncoderLayer(ClipTextConfig config) : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(config.HiddenSize, config.NumAttentionHeads);
        layer_norm1 = Layers.LayerNorm(config.HiddenSize, config.LayerNormEps);
        mlp = new ClipMlp(config.HiddenSize, config.IntermediateSize, config.HiddenAct);
        layer_norm2 = Layers.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    /// <param name="mask">Additive [B, 1, S, S] mask; null = causal only.</param>
    public override Tensor forward(Tensor hidden, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var h = hidden + self_attn.forward(layer_norm1.forward(hidden), mask);
        return (h + mlp.forward(layer_norm2.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>Multi-head causal self-attention with biased q/k/v/out projections (adapter-replaceable children).</summary>
public sealed class ClipAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    public nn.Module<Tensor, Tensor> q_proj;
    public nn.Module<Tensor, Tensor> k_proj;
    public nn.Module<Tensor, Tensor> v_proj;
    public nn.Module<Tensor, Tensor> out_proj;

    public int Heads { get; }

    public ClipAttention(int embedDim, int heads) : base(nameof(ClipAttention))
    {
        Heads = heads;
        q_proj = Layers.Linear(embedDim, embedDim);
        k_proj = Layers.Linear(embedDim, embedDim);
        v_proj = Layers.Linear(embedDim, embedDim);
        out_proj = Layers.Linear(embedDim, embedDim);
        RegisterComponents();
    }

    /// <param name="mask">Additive [B, 1, S, S] mask (causal + padding); null = causal only via is_casual.</param>
    public override Tensor forward(Tensor hidden, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], s = hidden.shape[1], d = hidden.shape[2];
        Tensor Heads_(Tensor x) => x.view(b, s, Heads, d / Heads).transpose(1, 2);
        var q = Heads_(q_proj.forward(hidden));
        var k = Heads_(k_proj.forward(hidden));
        var v = Heads_(v_proj.forward(hidden));
        // softmax(q kᵀ / sqrt(head_dim) + mask) v; transformers scales q first, the same up to rounding.
        var attn = nn.functional.scaled_dot_product_attention(q, k, v, mask, 0.0, is_casual: mask is null);
        return out_proj.forward(attn.transpose(1, 2).reshape(b, s, d)).MoveToOuterDisposeScope();
    }

    /// <summary>transformers' causal mask plus _prepare_4d_attention_mask: dtype-min where a key is in the future or padded.</summary>
    public static Tensor CausalPaddingMask(Tensor attentionMask, ScalarType dtype, Device device)
    {
        using var scope = NewDisposeScope();
        long b = attentionMask.shape[0], s = attentionMask.shape[1];
        var keep = attentionMask.to(device).to_type(ScalarType.Bool).view(b, 1, 1, s);
        var causal = ones(s, s, dtype: ScalarType.Bool, device: device).tril().view(1, 1, s, s);
        var min = zeros(1, dtype: dtype, device: device).fill_(finfo(dtype).min);
        return where(keep.logical_and(causal), zeros(1, dtype: dtype, device: device), min).MoveToOuterDisposeScope();
    }
}

/// <summary>fc1 → quick_gelu (x·σ(1.702x)) or exact gelu → fc2.</summary>
public sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
    public nn.Module<Tensor, Tensor> fc1;
    public nn.Module<Tensor, Tensor> fc2;
    private readonly bool _quickGelu;

    public ClipMlp(int hidden, int intermediate, string activation) : base(nameof(ClipMlp))
    {
        _quickGelu = activation switch
        {
            "quick_gelu" => true,
            "gelu" => false,
            _ => throw new ArgumentException($"unsupported hidden_act '{activation}' (quick_gelu or gelu)."),
        };
        fc1 = Layers.Linear(hidden, intermediate);
        fc2 = Layers.Linear(intermediate, hidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = fc1.forward(x);
        h = _quickGelu ? h * (1.702 * h).sigmoid() : nn.functional.gelu(h);
        return fc2.forward(h).MoveToOuterDisposeScope();
    }
}
