using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DiffusionPeft.Core.Text;

/// <summary>Special tokens and lengths of a CLIP tokenizer; defaults are those of openai/clip-vit-large-patch14 (SD 1.x).</summary>
public sealed record ClipTokenizerOptions
{
    /// <summary>"&lt;|endoftext|&gt;" for SD 1.x; "!" (id 0) for SD 2.x.</summary>
    public string PadToken { get; init; } = "<|endoftext|>";
    /// <summary>Sequence length the model sees: BOS + up to MaxLength-2 ids + EOS + padding.</summary>
    public int MaxLength { get; init; } = 77;
    public string UnkToken { get; init; } = "<|endoftext|>";
    public string BosToken { get; init; } = "<|startoftext|>";
    public string EosToken { get; init; } = "<|endoftext|>";
    public ClipTextCleanup Cleanup { get; init; } = ClipTextCleanup.Basic;
}

/// <summary>Model input for one prompt: ids padded to MaxLength, and what truncation removed (for a warning).</summary>
public sealed record TokenizedPrompt(long[] InputIds, long[] AttentionMask, bool Truncated, string? TruncatedText);

/// <summary>
/// The CLIP byte-level BPE tokenizer, equal to transformers' slow <c>CLIPTokenizer</c> (4.36): special tokens
/// (BOS, EOS, UNK, PAD) are split off the raw text first and never merged, every other piece is cleaned
/// (<see cref="ClipTextCleanup"/>), cut by CLIP's pre-tokenization pattern, mapped to the byte alphabet of
/// <c>bytes_to_unicode()</c> and merged by rank with "&lt;/w&gt;" on the last symbol of each word.
/// Thread-safe after construction.
/// </summary>
public sealed class ClipTokenizer
{
    /// <summary>transformers reads at most this many merges (49152 - 256 - 2).</summary>
    private const int MaxMerges = 49152 - 256 - 2;
    private const string EndOfWord = "</w>";

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _idToToken;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly Dictionary<string, int> _added; // special tokens: split off before BPE
    private readonly string[] _addedByLength;
    private readonly ConcurrentDictionary<string, string[]> _bpeCache = new(StringComparer.Ordinal);

    public ClipTokenizerOptions Options { get; }
    public int BosId { get; }
    public int EosId { get; }
    public int PadId { get; }
    public int UnkId { get; }
    public int MaxLength => Options.MaxLength;
    public int VocabSize => _idToToken.Count;
    /// <summary>The largest id this tokenizer produces (a text encoder needs more embedding rows than that).</summary>
    public int MaxId { get; }

    private ClipTokenizer(Dictionary<string, int> vocab, Dictionary<(string, string), int> ranks, ClipTokenizerOptions options)
    {
        if (options.MaxLength < 2) throw new ArgumentException($"MaxLength must be at least 2 (BOS + EOS), got {options.MaxLength}.");
        _vocab = vocab;
        _ranks = ranks;
        Options = options;
        _idToToken = vocab.GroupBy(kv => kv.Value).ToDictionary(g => g.Key, g => g.First().Key);

        // Like PreTrainedTokenizer._add_tokens: special tokens keep their vocabulary id, unknown ones get new ids.
        _added = new Dictionary<string, int>(StringComparer.Ordinal);
        int next = _idToToken.Count == 0 ? 0 : _idToToken.Keys.Max() + 1;
        foreach (var tok in new[] { options.BosToken, options.EosToken, options.UnkToken, options.PadToken })
        {
            if (string.IsNullOrEmpty(tok) || _added.ContainsKey(tok)) continue;
            if (!vocab.TryGetValue(tok, out int id)) { id = next++; _idToToken[id] = tok; }
            _added[tok] = id;
        }
        _addedByLength = _added.Keys.OrderByDescending(k => k.Length).ToArray();
        BosId = _added[options.BosToken];
        EosId = _added[options.EosToken];
        PadId = _added[options.PadToken];
        UnkId = _added[options.UnkToken];
        MaxId = _idToToken.Keys.Max();
    }

    /// <summary>A diffusers/transformers <c>tokenizer/</c> folder: vocab.json, merges.txt and, when present,
    /// the special tokens and model_max_length of tokenizer_config.json and special_tokens_map.json.</summary>
    public static ClipTokenizer FromFolder(string tokenizerDir, ClipTextCleanup cleanup = ClipTextCleanup.Basic)
    {
        if (!Directory.Exists(tokenizerDir)) throw new DirectoryNotFoundException($"{tokenizerDir}: tokenizer folder not found.");
        var options = OptionsFromConfig(Path.Combine(tokenizerDir, "tokenizer_config.json"),
            Path.Combine(tokenizerDir, "special_tokens_map.json"), new ClipTokenizerOptions { Cleanup = cleanup });
        return FromFiles(Path.Combine(tokenizerDir, "vocab.json"), Path.Combine(tokenizerDir, "merges.txt"), options);
    }

    /// <summary>Special tokens and model_max_length from tokenizer_config.json, then special_tokens_map.json
    /// (which wins, as in transformers); a path that is null or does not exist is skipped.</summary>
    public static ClipTokenizerOptions OptionsFromConfig(string? tokenizerConfigJson, string? specialTokensMapJson = null, ClipTokenizerOptions? baseOptions = null)
    {
        var options = baseOptions ?? new ClipTokenizerOptions();
        if (tokenizerConfigJson is not null) options = ApplyConfig(options, tokenizerConfigJson, readMaxLength: true);
        if (specialTokensMapJson is not null) options = ApplyConfig(options, specialTokensMapJson, readMaxLength: false);
        return options;
    }

    public static ClipTokenizer FromFiles(string vocabJson, string mergesTxt, ClipTokenizerOptions? options = null) =>
        new(ReadVocab(vocabJson), ReadMerges(mergesTxt), options ?? new ClipTokenizerOptions());

    /// <summary>
    /// A vocabulary with no merges: the 256 byte symbols, the same with &lt;/w&gt;, then BOS and EOS (514 ids). Every
    /// text is representable, one token per byte. The embedded default model uses it, so it needs no files.
    /// </summary>
    public static ClipTokenizer ByteLevelOnly(ClipTokenizerOptions? options = null)
    {
        options ??= new ClipTokenizerOptions();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) vocab[ByteSymbol(b)] = vocab.Count;
        for (int b = 0; b < 256; b++) vocab[ByteSymbol(b) + EndOfWord] = vocab.Count;
        vocab.TryAdd(options.BosToken, vocab.Count);
        vocab.TryAdd(options.EosToken, vocab.Count);
        return new ClipTokenizer(vocab, new Dictionary<(string, string), int>(), options);

        static string ByteSymbol(int b) => ClipByteLevel.Symbol((byte)b).ToString();
    }

    /// <summary>
    /// Writes a diffusers/transformers <c>tokenizer/</c> folder that <see cref="FromFolder"/> reads back to an equal
    /// tokenizer: vocab.json, merges.txt (in rank order, with the "#version: 0.2" header) and tokenizer_config.json
    /// (special tokens and model_max_length). Files are written atomically.
    /// </summary>
    public void Save(string tokenizerDir)
    {
        Directory.CreateDirectory(tokenizerDir);
        var vocab = new JsonObject();
        foreach (var (token, id) in _vocab.OrderBy(kv => kv.Value)) vocab[token] = id;
        IO.AtomicFile.WriteAllText(Path.Combine(tokenizerDir, "vocab.json"), vocab.ToJsonString());
        var merges = new StringBuilder("#version: 0.2\n");
        foreach (var ((a, b), _) in _ranks.OrderBy(kv => kv.Value)) merges.Append(a).Append(' ').Append(b).Append('\n');
        IO.AtomicFile.WriteAllText(Path.Combine(tokenizerDir, "merges.txt"), merges.ToString());
        var config = new JsonObject
        {
            ["tokenizer_class"] = "CLIPTokenizer",
            ["model_max_length"] = Options.MaxLength,
            ["bos_token"] = Options.BosToken,
            ["eos_token"] = Options.EosToken,
            ["unk_token"] = Options.UnkToken,
            ["pad_token"] = Options.PadToken,
            ["do_lower_case"] = true,
        };
        IO.AtomicFile.WriteAllText(Path.Combine(tokenizerDir, "tokenizer_config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>transformers' tokenize(): BPE token strings (byte alphabet), special tokens as themselves.</summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        foreach (var (piece, special) in SplitOnSpecialTokens(text))
        {
            if (special) { tokens.Add(piece); continue; }
            var cleaned = ClipTextCleanupRules.Apply(piece, Options.Cleanup);
            foreach (var word in ClipPreTokenizer.Split(cleaned))
                tokens.AddRange(Bpe(ClipByteLevel.Encode(word)));
        }
        return tokens;
    }

    /// <summary>Token ids without BOS/EOS and without truncation.</summary>
    public int[] Encode(string text) => Tokenize(text).Select(TokenToId).ToArray();

    /// <summary>BOS + ids (truncated to MaxLength - 2) + EOS, padded with PadId to MaxLength; mask 1 on the real tokens.</summary>
    public TokenizedPrompt EncodeForModel(string text)
    {
        var ids = Encode(text);
        int room = MaxLength - 2;
        bool truncated = ids.Length > room;
        var inputIds = new long[MaxLength];
        var mask = new long[MaxLength];
        int body = Math.Min(ids.Length, room);
        inputIds[0] = BosId;
        for (int i = 0; i < body; i++) inputIds[1 + i] = ids[i];
        inputIds[1 + body] = EosId;
        for (int i = body + 2; i < MaxLength; i++) inputIds[i] = PadId;
        for (int i = 0; i < body + 2; i++) mask[i] = 1;
        return new TokenizedPrompt(inputIds, mask, truncated, truncated ? Decode(ids[room..]) : null);
    }

    /// <summary>Ids back to text (CLIPTokenizer.convert_tokens_to_string); special tokens are skipped unless asked for.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        void Flush() { sb.Append(Encoding.UTF8.GetString(bytes.ToArray())); bytes.Clear(); }
        foreach (int id in ids)
        {
            if (!_idToToken.TryGetValue(id, out var tok)) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is not in the vocabulary.");
            if (_added.ContainsKey(tok))
            {
                if (skipSpecialTokens) continue;
                Flush(); sb.Append(tok); continue;
            }
            foreach (char c in tok)
                if (ClipByteLevel.TryDecode(c, out byte b)) bytes.Add(b);
        }
        Flush();
        return sb.ToString().Replace(EndOfWord, " ").Trim();
    }

    public int TokenToId(string token) =>
        _added.TryGetValue(token, out int a) ? a : _vocab.TryGetValue(token, out int id) ? id : UnkId;

    /// <summary>Splits the raw text at every occurrence of a special token (longest match first), like transformers' Trie.</summary>
    private IEnumerable<(string Piece, bool Special)> SplitOnSpecialTokens(string text)
    {
        int start = 0;
        for (int i = 0; i < text.Length;)
        {
            var match = _addedByLength.FirstOrDefault(t => i + t.Length <= text.Length && string.CompareOrdinal(text, i, t, 0, t.Length) == 0);
            if (match is null) { i++; continue; }
            if (i > start) yield return (text[start..i], false);
            yield return (match, true);
            i += match.Length;
            start = i;
        }
        if (start < text.Length) yield return (text[start..], false);
    }

    /// <summary>CLIPTokenizer.bpe: repeatedly merge the lowest-ranked adjacent pair (all its occurrences, left to right).</summary>
    private string[] Bpe(string word)
    {
        // The pre-tokenizer keeps these whole, and CLIPTokenizer's cache returns them unmerged and without </w>.
        if (word is "<|startoftext|>" or "<|endoftext|>") return [word];
        if (word.Length > MaxBpeWordLength)
        {
            var pieces = new List<string>();
            for (int at = 0; at < word.Length; at += MaxBpeWordLength)
            {
                var piece = MergePiece(word.Substring(at, Math.Min(MaxBpeWordLength, word.Length - at)), last: at + MaxBpeWordLength >= word.Length);
                pieces.AddRange(piece);
            }
            return pieces.ToArray();
        }
        return _bpeCache.GetOrAdd(word, w => MergePiece(w, last: true));
    }

    private string[] MergePiece(string w, bool last)
    {
        var symbols = new List<string>(w.Length);
        for (int i = 0; i < w.Length - 1; i++) symbols.Add(w[i].ToString());
        symbols.Add(last ? w[^1] + EndOfWord : w[^1].ToString());
        while (symbols.Count > 1)
        {
            int best = int.MaxValue;
            (string, string) pair = default;
            for (int i = 0; i < symbols.Count - 1; i++)
                if (_ranks.TryGetValue((symbols[i], symbols[i + 1]), out int r) && r < best) { best = r; pair = (symbols[i], symbols[i + 1]); }
            if (best == int.MaxValue) break;
            var merged = new List<string>(symbols.Count);
            for (int i = 0; i < symbols.Count;)
            {
                if (i < symbols.Count - 1 && symbols[i] == pair.Item1 && symbols[i + 1] == pair.Item2)
                {
                    merged.Add(pair.Item1 + pair.Item2);
                    i += 2;
                }
                else merged.Add(symbols[i++]);
            }
            symbols = merged;
        }
        return symbols.ToArray();
    }

    /// <summary>Real vocab.json files are about 1 MB and merges.txt 0.5 MB; the bound keeps parsing memory in proportion.</summary>
    public const long MaxFileBytes = 64 << 20;

    /// <summary>Ids above this are not a CLIP vocabulary (49,408 entries); it keeps every id far from int overflow.</summary>
    public const int MaxTokenId = 1 << 24;

    /// <summary>
    /// BPE merges a word in rounds, O(length²): a word longer than this many bytes (never one of a real prompt) is merged
    /// in pieces of this length, so a hostile megabyte-long word costs seconds, not hours.
    /// </summary>
    public const int MaxBpeWordLength = 512;

    private static readonly JsonDocumentOptions StrictJson = new() { AllowDuplicateProperties = false };

    private static string ReadText(string path, string what)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: {what} not found.", path);
        try
        {
            long length = new FileInfo(path).Length;
            if (length > MaxFileBytes) throw new InvalidDataException($"{path}: {what} is {length:N0} bytes, more than the {MaxFileBytes:N0} a tokenizer file may have.");
            return File.ReadAllText(path, Encoding.UTF8);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot read the {what}: {ex.Message}", ex);
        }
    }

    private static Dictionary<string, int> ReadVocab(string path)
    {
        JsonNode? root;
        var text = ReadText(path, "CLIP vocabulary file");
        try { root = JsonNode.Parse(text, documentOptions: StrictJson); }
        catch (JsonException ex) { throw new InvalidDataException($"{path}: vocab.json is not valid JSON: {ex.Message}", ex); }
        if (root is not JsonObject obj) throw new InvalidDataException($"{path}: vocab.json must be a JSON object mapping token strings to ids.");
        var vocab = new Dictionary<string, int>(obj.Count, StringComparer.Ordinal);
        foreach (var (token, node) in obj)
        {
            if (node is not JsonValue v || !v.TryGetValue<int>(out int id) || id < 0 || id > MaxTokenId)
                throw new InvalidDataException($"{path}: vocab.json entry \"{token}\" must map to a non-negative integer id (at most {MaxTokenId}), got {node?.ToJsonString() ?? "null"}.");
            vocab[token] = id;
        }
        if (vocab.Count == 0) throw new InvalidDataException($"{path}: vocab.json is empty.");
        return vocab;
    }

    private static Dictionary<(string, string), int> ReadMerges(string path)
    {
        // transformers: read().strip().split("\n")[1 : 49152 - 256 - 2 + 1]: the first line (#version) is always skipped.
        var lines = ReadText(path, "CLIP merges file").Replace("\r\n", "\n").Trim().Split('\n');
        var ranks = new Dictionary<(string, string), int>();
        for (int i = 1; i < lines.Length && i <= MaxMerges; i++)
        {
            var parts = lines[i].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) continue;
            if (parts.Length != 2) throw new InvalidDataException($"{path}: line {i + 1} is not a merge of two symbols: \"{lines[i]}\".");
            ranks[(parts[0], parts[1])] = i - 1; // a repeated merge keeps its last rank, as dict(zip(...)) does
        }
        return ranks;
    }

    private static ClipTokenizerOptions ApplyConfig(ClipTokenizerOptions options, string path, bool readMaxLength)
    {
        if (!File.Exists(path)) return options;
        JsonObject cfg;
        var text = ReadText(path, "tokenizer config");
        try { cfg = JsonNode.Parse(text, documentOptions: StrictJson) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object."); }
        catch (JsonException ex) { throw new InvalidDataException($"{path}: invalid JSON: {ex.Message}", ex); }

        string? Token(string key) => cfg[key] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) && s.Length > 0 => s,
            JsonObject o when o["content"] is JsonValue c && c.TryGetValue<string>(out var s) && s.Length > 0 => s,
            null => null,
            var other => throw new InvalidDataException($"{path}: '{key}' should be a non-empty string or an object with 'content', got {other.ToJsonString()}."),
        };
        options = options with
        {
            PadToken = Token("pad_token") ?? options.PadToken,
            BosToken = Token("bos_token") ?? options.BosToken,
            EosToken = Token("eos_token") ?? options.EosToken,
            UnkToken = Token("unk_token") ?? options.UnkToken,
        };
        // Tokenizers without a limit store int(1e30); CLIP models always have one, so keep the default then.
        if (readMaxLength && cfg["model_max_length"] is JsonValue ml && ml.TryGetValue<double>(out double len) && len >= 2 && len <= 1_000_000)
            options = options with { MaxLength = (int)len };
        return options;
    }
}

/// <summary>CLIP's byte-to-symbol table (bytes_to_unicode): printable Latin-1 bytes map to themselves, the rest to U+0100 onwards.</summary>
public static class ClipByteLevel
{
    private static readonly char[] ByteToChar = BuildTable();
    private static readonly Dictionary<char, byte> CharToByte =
        ByteToChar.Select((c, b) => (c, b)).ToDictionary(x => x.c, x => (byte)x.b);

    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    public static bool TryDecode(char symbol, out byte value) => CharToByte.TryGetValue(symbol, out value);

    public static char Symbol(byte value) => ByteToChar[value];

    private static char[] BuildTable()
    {
        var table = new char[256];
        var direct = new bool[256];
        for (int b = '!'; b <= '~'; b++) direct[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) direct[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) direct[b] = true;
        int n = 0;
        for (int b = 0; b < 256; b++) table[b] = direct[b] ? (char)b : (char)(256 + n++);
        return table;
    }
}

/// <summary>
/// CLIP's pre-tokenization pattern, scanned by code point (the .NET regex engine would see surrogate halves
/// instead of supplementary letters): <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>,
/// case-insensitive, as re.findall sees it (alternatives tried in order at each match start).
/// </summary>
public static class ClipPreTokenizer
{
    private static readonly string[] Literals = ["<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    public static IEnumerable<string> Split(string text)
    {
        var runes = ClipTextCleanupRules.Runes(text).ToArray();
        for (int i = 0; i < runes.Length;)
        {
            var literal = Literals.FirstOrDefault(l => MatchesIgnoreCase(runes, i, l));
            if (literal is not null)
            {
                yield return Concat(runes, i, literal.Length);
                i += literal.Length;
                continue;
            }
            var kind = KindOf(runes[i]);
            if (kind == CharKind.Space) { i++; continue; }
            if (kind == CharKind.Number) { yield return runes[i].ToString(); i++; continue; }
            int j = i + 1;
            while (j < runes.Length && KindOf(runes[j]) == kind) j++;
            yield return Concat(runes, i, j - i);
            i = j;
        }
    }

    private enum CharKind { Letter, Number, Space, Other }

    private static CharKind KindOf(Rune r)
    {
        if (ClipTextCleanupRules.IsPythonSpace(r.Value)) return CharKind.Space;
        return Rune.GetUnicodeCategory(r) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharKind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CharKind.Number,
            _ => CharKind.Other,
        };
    }

    // The literals are ASCII, so each matches one rune per character.
    private static bool MatchesIgnoreCase(Rune[] runes, int i, string literal)
    {
        if (i + literal.Length > runes.Length) return false;
        for (int k = 0; k < literal.Length; k++)
        {
            int cp = runes[i + k].Value;
            if (cp > 0x7F || char.ToLowerInvariant((char)cp) != literal[k]) return false;
        }
        return true;
    }

    private static string Concat(Rune[] runes, int start, int count)
    {
        var sb = new StringBuilder(count);
        for (int k = start; k < start + count; k++) sb.Append(runes[k].ToString());
        return sb.ToString();
    }
}
