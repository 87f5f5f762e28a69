using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Core.Text;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.ToyWorld.Vocabulary;

/// <summary>
/// A CLIP-format byte-level BPE vocabulary for the toy world, laid out like the real CLIP vocabulary: ids 0-255 the
/// byte symbols of bytes_to_unicode() in its order, 256-511 the same with "&lt;/w&gt;", then one id per merge result in
/// merge order, then "&lt;|startoftext|&gt;" and "&lt;|endoftext|&gt;". The merges make every word of the grammar, every
/// subject identifier and <see cref="ExtraWords"/> ONE token; any other text still tokenizes byte by byte.
/// Merges are added greedily: while a word splits into several tokens under the merges so far, merge its first two
/// tokens. A new merge ranks after all earlier ones, so it never changes how an earlier word tokenizes.
/// </summary>
public static class ToyVocabulary
{
    /// <summary>The text encoder's max_position_embeddings (and tokenizer model_max_length): BOS + at most 30 tokens + EOS.</summary>
    public const int ContextLength = 32;
    public const int MaxCaptionTokens = ContextLength - 2;

    public const string StartOfText = "<|startoftext|>", EndOfText = "<|endoftext|>", EndOfWord = "</w>";

    /// <summary>Words outside the grammar that prompts commonly carry (the trainer's default "a photo of sks star").</summary>
    public static IReadOnlyList<string> ExtraWords { get; } = ["photo", "of"];

    /// <summary>Every word that is one token: the grammar's, the subjects' identifiers, <see cref="ExtraWords"/>.</summary>
    public static IReadOnlyList<string> SingleTokenWords { get; } =
        ToyGrammar.Words.Concat(ToySubjects.Identifiers).Concat(ExtraWords).Distinct(StringComparer.Ordinal).ToArray();

    // Static initializers run in text order: ByteOrder before Vocab.
    /// <summary>The 256 byte values in the order of GPT-2/CLIP's bytes_to_unicode(): printable ranges first, then the rest.</summary>
    public static IReadOnlyList<byte> ByteOrder { get; } = BuildByteOrder();

    /// <summary>The merges in rank order (each a pair of symbols).</summary>
    public static IReadOnlyList<(string Left, string Right)> Merges { get; } = BuildMerges(SingleTokenWords);

    /// <summary>Token → id, in id order.</summary>
    public static IReadOnlyList<KeyValuePair<string, int>> Vocab { get; } = BuildVocab(Merges);

    public static int VocabSize => Vocab.Count;

    /// <summary>
    /// The files the tokenizer is read from: <see cref="Write"/> writes them and special_tokens_map.json, a model folder's
    /// tokenizer (diffusers' layout, which the recipe's --components-from copies) has these three.
    /// </summary>
    private static readonly string[] FileNames = ["vocab.json", "merges.txt", "tokenizer_config.json"];

    public static bool IsComplete(string dir) => FileNames.All(f => File.Exists(Path.Combine(dir, f)));

    /// <summary>
    /// Writes a diffusers <c>tokenizer/</c> folder: vocab.json, merges.txt (with the "#version: 0.2" line),
    /// tokenizer_config.json (CLIPTokenizer, model_max_length <see cref="ContextLength"/>) and special_tokens_map.json.
    /// </summary>
    public static void Write(string dir)
    {
        Directory.CreateDirectory(dir);
        var options = new JsonWriterOptions { Indented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        AtomicFile.Write(Path.Combine(dir, "vocab.json"), s =>
        {
            using var w = new Utf8JsonWriter(s, options);
            w.WriteStartObject();
            foreach (var (token, id) in Vocab) w.WriteNumber(token, id);
            w.WriteEndObject();
        });
        var merges = new StringBuilder("#version: 0.2\n");
        foreach (var (l, r) in Merges) merges.Append(l).Append(' ').Append(r).Append('\n');
        AtomicFile.WriteAllText(Path.Combine(dir, "merges.txt"), merges.ToString());
        AtomicFile.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), $$"""
            {
              "tokenizer_class": "CLIPTokenizer",
              "model_max_length": {{ContextLength}},
              "do_lower_case": true,
              "bos_token": "{{StartOfText}}",
              "eos_token": "{{EndOfText}}",
              "unk_token": "{{EndOfText}}",
              "pad_token": "{{EndOfText}}",
              "errors": "replace",
              "add_prefix_space": false
            }

            """);
        AtomicFile.WriteAllText(Path.Combine(dir, "special_tokens_map.json"), $$"""
            {
              "bos_token": "{{StartOfText}}",
              "eos_token": "{{EndOfText}}",
              "unk_token": "{{EndOfText}}",
              "pad_token": "{{EndOfText}}"
            }

            """);
    }

    /// <summary>The tokenizer of the folder <see cref="Write"/> wrote.</summary>
    public static ClipTokenizer Load(string dir) => ClipTokenizer.FromFolder(dir);

    /// <summary>The toy tokenizer without a folder to keep: written to a temporary folder, loaded, and the folder removed.</summary>
    public static ClipTokenizer CreateTokenizer()
    {
        var dir = Directory.CreateTempSubdirectory("dpeft-toy-tokenizer-").FullName;
        try
        {
            Write(dir);
            return Load(dir);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static byte[] BuildByteOrder()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        return printable.Concat(Enumerable.Range(0, 256).Except(printable)).Select(b => (byte)b).ToArray();
    }

    private static List<(string, string)> BuildMerges(IEnumerable<string> words)
    {
        var merges = new List<(string, string)>();
        var ranks = new Dictionary<(string, string), int>();
        foreach (var word in words)
        {
            foreach (var piece in ClipPreTokenizer.Split(word))
            {
                for (;;)
                {
                    var tokens = Bpe(ClipByteLevel.Encode(piece), ranks);
                    if (tokens.Count == 1) break;
                    var pair = (tokens[0], tokens[1]);
                    ranks[pair] = merges.Count;
                    merges.Add(pair);
                }
            }
        }
        return merges;
    }

    private static List<KeyValuePair<string, int>> BuildVocab(IReadOnlyList<(string Left, string Right)> merges)
    {
        var tokens = new List<string>();
        tokens.AddRange(ByteOrder.Select(b => ClipByteLevel.Symbol(b).ToString()));
        tokens.AddRange(ByteOrder.Select(b => ClipByteLevel.Symbol(b) + EndOfWord));
        tokens.AddRange(merges.Select(m => m.Left + m.Right));
        tokens.Add(StartOfText);
        tokens.Add(EndOfText);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        return tokens.Where(seen.Add).Select((t, id) => new KeyValuePair<string, int>(t, id)).ToList();
    }

    /// <summary>CLIP's BPE of one pre-tokenized word (byte symbols): merge the lowest-ranked adjacent pair until none applies.</summary>
    private static List<string> Bpe(string word, Dictionary<(string, string), int> ranks)
    {
        var symbols = word.Select(c => c.ToString()).ToList();
        symbols[^1] += EndOfWord;
        while (symbols.Count > 1)
        {
            int best = int.MaxValue, at = -1;
            for (int i = 0; i < symbols.Count - 1; i++)
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out int r) && r < best) (best, at) = (r, i);
            if (at < 0) break;
            var (left, right) = (symbols[at], symbols[at + 1]);
            var merged = new List<string>(symbols.Count);
            for (int i = 0; i < symbols.Count;)
                if (i < symbols.Count - 1 && symbols[i] == left && symbols[i + 1] == right) { merged.Add(left + right); i += 2; }
                else merged.Add(symbols[i++]);
            symbols = merged;
        }
        return symbols;
    }
}
