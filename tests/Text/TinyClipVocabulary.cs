using System.Text.Json.Nodes;
using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Tests.Text;

/// <summary>
/// A byte-level-complete CLIP vocabulary written by the tests themselves, laid out like the real one: the 256 byte symbols
/// in bytes_to_unicode() order, the same with "&lt;/w&gt;", the results of merges that make each given word one token,
/// then &lt;|startoftext|&gt; and &lt;|endoftext|&gt;.
/// </summary>
internal static class TinyClipVocabulary
{
    /// <summary>Writes vocab.json and merges.txt into <paramref name="dir"/>; each of <paramref name="words"/> becomes one token "word&lt;/w&gt;".</summary>
    public static (string Vocab, string Merges) Write(string dir, params string[] words)
    {
        var symbols = ByteOrder().Select(b => ClipByteLevel.Symbol(b).ToString()).ToList();
        var vocab = new List<string>(symbols);
        vocab.AddRange(symbols.Select(s => s + "</w>"));
        var merges = new List<(string, string)>();
        foreach (var word in words)
        {
            // Left to right: ((w0 w1) w2) ... (w0..wn-1 wn</w>).
            var parts = ClipByteLevel.Encode(word).Select(c => c.ToString()).ToList();
            parts[^1] += "</w>";
            var acc = parts[0];
            foreach (var next in parts.Skip(1))
            {
                if (!merges.Contains((acc, next))) merges.Add((acc, next));
                acc += next;
                if (!vocab.Contains(acc)) vocab.Add(acc);
            }
        }
        vocab.Add("<|startoftext|>");
        vocab.Add("<|endoftext|>");
        var json = new JsonObject();
        for (int i = 0; i < vocab.Count; i++) json[vocab[i]] = i;
        var vocabPath = Path.Combine(dir, "vocab.json");
        var mergesPath = Path.Combine(dir, "merges.txt");
        File.WriteAllText(vocabPath, json.ToJsonString());
        File.WriteAllLines(mergesPath, ["#version: 0.2", .. merges.Select(m => $"{m.Item1} {m.Item2}")]);
        return (vocabPath, mergesPath);
    }

    /// <summary>bytes_to_unicode()'s order: printable ASCII and Latin-1 first, then the other bytes.</summary>
    private static IEnumerable<byte> ByteOrder()
    {
        var direct = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        return direct.Concat(Enumerable.Range(0, 256).Except(direct)).Select(b => (byte)b);
    }
}
