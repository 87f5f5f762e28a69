using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DiffusionPeft.Metrics;

/// <summary>
/// CLIP text with projection (e.g. clip-vit-base-patch32 text_model export): <c>input_ids</c> int64 [B, L] →
/// <c>text_embeds</c> [B, D], not normalised. Tokenization is the caller's (a delegate, typically
/// <c>ClipTokenizer.EncodeForModel(text).InputIds</c>).
/// </summary>
public sealed class ClipTextEmbedder : IDisposable
{
    private const string InputName = "input_ids", MaskName = "attention_mask", OutputName = "text_embeds";
    private readonly OnnxModel _model;
    private readonly bool _hasMask;
    private readonly Func<string, long[]>? _tokenize;

    /// <summary>Token count per prompt, from the model's input shape (77 for CLIP).</summary>
    public int SequenceLength { get; }

    public ClipTextEmbedder(string modelPath, Func<string, long[]>? tokenize = null, SessionOptions? options = null, int sequenceLength = 77)
    {
        _tokenize = tokenize;
        _model = new OnnxModel(modelPath, "CLIP text", options);
        try
        {
            var input = _model.RequireInput(InputName, TensorElementType.Int64, 2, MaskName);
            int fixedLen = input.Dimensions[1];
            SequenceLength = fixedLen > 0 ? fixedLen : sequenceLength;
            _hasMask = _model.Session.InputMetadata.ContainsKey(MaskName);
            _model.RequireOutput(OutputName, TensorElementType.Float, 2);
        }
        catch { _model.Dispose(); throw; }
    }

    public string Identity => $"clip_t|onnx-sha256:{_model.Sha256}|{OutputName}";

    public float[][] Embed(IReadOnlyList<string> prompts)
    {
        if (_tokenize is null) throw new InvalidOperationException("no tokenizer was given: pass token ids to Embed(long[][]) or a tokenizer to the constructor");
        return Embed(prompts.Select(p => _tokenize(p)).ToArray());
    }

    public float[][] Embed(IReadOnlyList<long[]> inputIds)
    {
        int batch = inputIds.Count, len = SequenceLength;
        if (batch == 0) return [];
        var ids = new long[batch * len];
        for (int b = 0; b < batch; b++)
        {
            if (inputIds[b].Length != len)
                throw new ArgumentException($"prompt {b} has {inputIds[b].Length} token ids; {_model.Path} takes exactly {len} (pad/truncate as CLIPTokenizer does)");
            inputIds[b].CopyTo(ids, b * len);
        }
        var names = new List<string> { InputName };
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [batch, len]);
        var values = new List<OrtValue> { idsValue };
        OrtValue? maskValue = null;
        if (_hasMask)
        {
            // Exports with a mask (HF padding): attend up to and including the first eos, CLIP's largest id.
            var mask = new long[batch * len];
            for (int b = 0; b < batch; b++)
            {
                var row = inputIds[b];
                int eos = Array.IndexOf(row, row.Max());
                for (int t = 0; t <= eos; t++) mask[b * len + t] = 1;
            }
            maskValue = OrtValue.CreateTensorValueFromMemory(mask, [batch, len]);
            names.Add(MaskName);
            values.Add(maskValue);
        }
        try
        {
            using var runOptions = new RunOptions();
            using var outputs = _model.Session.Run(runOptions, names, values, [OutputName]);
            var shape = outputs[0].GetTensorTypeAndShape().Shape;
            if (shape.Length != 2 || shape[0] != batch) throw _model.Unfit($"'{OutputName}' has shape [{string.Join(", ", shape)}] for {batch} prompts");
            int dim = (int)shape[1];
            var data = outputs[0].GetTensorDataAsSpan<float>();
            var result = new float[batch][];
            for (int b = 0; b < batch; b++) result[b] = data.Slice(b * dim, dim).ToArray();
            return result;
        }
        finally { maskValue?.Dispose(); }
    }

    public void Dispose() => _model.Dispose();
}
