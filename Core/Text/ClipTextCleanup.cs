using System.Globalization;
using System.Net;
using System.Text;

namespace DiffusionPeft.Core.Text;

/// <summary>How <see cref="ClipTokenizer"/> cleans a text before pre-tokenization.</summary>
public enum ClipTextCleanup
{
    /// <summary>
    /// transformers' fallback when ftfy is not installed (what diffusers pipelines usually run with):
    /// <c>BasicTokenizer(strip_accents=False, do_split_on_punc=False)</c>, i.e. control characters removed,
    /// whitespace normalized, spaces around CJK ideographs, NFC, Python lower-casing.
    /// </summary>
    Basic,

    /// <summary>
    /// An approximation of <c>whitespace_clean(ftfy.fix_text(text)).lower()</c>: HTML entities, Latin
    /// ligatures, full-width forms, curly quotes, line breaks, ftfy's control characters, NFC. ftfy's
    /// mojibake repair has no equivalent here.
    /// </summary>
    FtfyLike,
}

/// <summary>The text cleanup steps of transformers' CLIPTokenizer, reproduced code point by code point.</summary>
public static class ClipTextCleanupRules
{
    public static string Apply(string text, ClipTextCleanup cleanup) => cleanup switch
    {
        ClipTextCleanup.Basic => BasicClean(text),
        ClipTextCleanup.FtfyLike => PythonLower(WhitespaceClean(FtfyLikeFix(text))),
        _ => throw new ArgumentOutOfRangeException(nameof(cleanup)),
    };

    /// <summary>transformers BasicTokenizer.tokenize (no accent stripping, no punctuation split), joined by spaces.</summary>
    public static string BasicClean(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (var r in Runes(text))
        {
            int cp = r.Value;
            if (cp == 0 || cp == 0xFFFD || IsBertControl(r)) continue;
            if (IsBertWhitespace(r)) { sb.Append(' '); continue; }
            if (IsCjkIdeograph(cp)) { sb.Append(' ').Append(r.ToString()).Append(' '); continue; }
            sb.Append(r.ToString());
        }
        var normalized = sb.ToString().Normalize(NormalizationForm.FormC);
        return string.Join(' ', PythonSplit(normalized).Select(PythonLower));
    }

    /// <summary>CLIP's whitespace_clean: runs of whitespace become one space, then strip.</summary>
    public static string WhitespaceClean(string text) => string.Join(' ', PythonSplit(text));

    /// <summary>The parts of ftfy.fix_text (6.1 defaults) that do not need its mojibake heuristics.</summary>
    public static string FtfyLikeFix(string text)
    {
        // ftfy's unescape_html="auto" leaves text that contains '<' alone (it may be real HTML).
        bool unescape = !text.Contains('<');
        for (int round = 0; round < 4; round++)
        {
            var before = text;
            if (unescape) text = WebUtility.HtmlDecode(text);
            var sb = new StringBuilder(text.Length);
            foreach (var r in Runes(text))
            {
                int cp = r.Value;
                if (Ligatures.TryGetValue(cp, out var lig)) { sb.Append(lig); continue; }
                if (cp == 0x3000) { sb.Append(' '); continue; }
                if (cp is >= 0xFF01 and <= 0xFFEF)
                {
                    var alt = r.ToString().Normalize(NormalizationForm.FormKC);
                    sb.Append(alt);
                    continue;
                }
                if (cp is 0x02BC or (>= 0x2018 and <= 0x201B)) { sb.Append('\''); continue; }
                if (cp is >= 0x201C and <= 0x201F) { sb.Append('"'); continue; }
                if (cp is 0x2028 or 0x2029 or 0x85) { sb.Append('\n'); continue; }
                if (IsFtfyControl(cp)) continue;
                sb.Append(r.ToString());
            }
            text = sb.ToString().Replace("\r\n", "\n").Replace('\r', '\n').Normalize(NormalizationForm.FormC);
            if (text == before) break;
        }
        return text;
    }

    /// <summary>Python's str.lower(): simple lower-case mapping plus U+0130 → "i̇" and the final-sigma rule.</summary>
    public static string PythonLower(string text)
    {
        var runes = Runes(text).ToArray();
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < runes.Length; i++)
        {
            int cp = runes[i].Value;
            if (cp == 0x0130) sb.Append("i\u0307");
            else if (cp == 0x03A3) sb.Append(IsFinalSigma(runes, i) ? 'ς' : 'σ');
            else sb.Append(Rune.ToLowerInvariant(runes[i]).ToString());
        }
        return sb.ToString();
    }

    /// <summary>Python's str.split() with no argument: split on Unicode whitespace, drop empty parts.</summary>
    public static IEnumerable<string> PythonSplit(string text)
    {
        var sb = new StringBuilder();
        foreach (var r in Runes(text))
        {
            if (IsPythonSpace(r.Value))
            {
                if (sb.Length > 0) { yield return sb.ToString(); sb.Clear(); }
            }
            else sb.Append(r.ToString());
        }
        if (sb.Length > 0) yield return sb.ToString();
    }

    /// <summary>Python str.isspace() (also the \s of the regex module for the characters that survive cleanup).</summary>
    public static bool IsPythonSpace(int cp) =>
        cp is (>= 0x09 and <= 0x0D) or (>= 0x1C and <= 0x20) or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A)
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;

    /// <summary>The runes of a string; an unpaired surrogate becomes U+FFFD (Python could not UTF-8 encode it either).</summary>
    public static IEnumerable<Rune> Runes(string text)
    {
        for (int i = 0; i < text.Length;)
        {
            var status = Rune.DecodeFromUtf16(text.AsSpan(i), out var r, out int used);
            yield return status == System.Buffers.OperationStatus.Done ? r : Rune.ReplacementChar;
            i += Math.Max(used, 1);
        }
    }

    private static bool IsBertWhitespace(Rune r) =>
        r.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(r) == UnicodeCategory.SpaceSeparator;

    private static bool IsBertControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r') return false;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    /// <summary>BasicTokenizer._is_chinese_char: the CJK Unified Ideographs blocks (not kana, not hangul).</summary>
    private static bool IsCjkIdeograph(int cp) =>
        cp is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF) or (>= 0x20000 and <= 0x2A6DF)
            or (>= 0x2A700 and <= 0x2B73F) or (>= 0x2B740 and <= 0x2B81F) or (>= 0x2B820 and <= 0x2CEAF)
            or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);

    /// <summary>ftfy's CONTROL_CHARS: removed by remove_control_chars (tab, newline, CR, zero-width characters stay).</summary>
    private static bool IsFtfyControl(int cp) =>
        cp is (>= 0x00 and <= 0x08) or 0x0B or (>= 0x0E and <= 0x1F) or 0x7F or (>= 0x206A and <= 0x206F) or 0xFEFF
            or (>= 0xFFF9 and <= 0xFFFC) or (>= 0x1D173 and <= 0x1D17A) or (>= 0xE0000 and <= 0xE007F);

    private static readonly Dictionary<int, string> Ligatures = new()
    {
        [0x0132] = "IJ", [0x0133] = "ij", [0x0149] = "ʼn", [0x01F1] = "DZ", [0x01F2] = "Dz", [0x01F3] = "dz",
        [0x01C4] = "DŽ", [0x01C5] = "Dž", [0x01C6] = "dž", [0x01C7] = "LJ", [0x01C8] = "Lj", [0x01C9] = "lj",
        [0x01CA] = "NJ", [0x01CB] = "Nj", [0x01CC] = "nj", [0xFB00] = "ff", [0xFB01] = "fi", [0xFB02] = "fl",
        [0xFB03] = "ffi", [0xFB04] = "ffl", [0xFB05] = "ſt", [0xFB06] = "st",
    };

    // Unicode Final_Sigma: a cased letter before (skipping case-ignorables) and none after.
    private static bool IsFinalSigma(Rune[] runes, int i)
    {
        int j = i - 1;
        while (j >= 0 && IsCaseIgnorable(runes[j])) j--;
        if (j < 0 || !IsCased(runes[j])) return false;
        int k = i + 1;
        while (k < runes.Length && IsCaseIgnorable(runes[k])) k++;
        return k >= runes.Length || !IsCased(runes[k]);
    }

    private static bool IsCased(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(Rune r) => r.Value is '\'' or '.' or ':' or 0x00B7 or 0x2019
        || Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;
}
