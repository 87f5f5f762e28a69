using System.Text.RegularExpressions;

namespace DiffusionPeft.Adapters;

/// <summary>
/// A pattern over dotted module paths. Regex patterns are searched (anchor them yourself); glob patterns must
/// match the whole path, with <c>*</c> = any run inside one segment and <c>**</c> = any run across segments.
/// </summary>
public sealed class TargetPattern
{
    private readonly Regex _regex;

    private TargetPattern(string text, Regex regex) { Text = text; _regex = regex; }

    public string Text { get; }

    public static TargetPattern Regex(string pattern) =>
        new(pattern, new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled));

    public static TargetPattern Glob(string glob)
    {
        var sb = new System.Text.StringBuilder("^");
        for (int i = 0; i < glob.Length; i++)
        {
            if (glob[i] == '*')
            {
                bool dbl = i + 1 < glob.Length && glob[i + 1] == '*';
                sb.Append(dbl ? ".*" : "[^.]*");
                if (dbl) i++;
            }
            else if (glob[i] == '?') sb.Append("[^.]");
            else sb.Append(System.Text.RegularExpressions.Regex.Escape(glob[i].ToString()));
        }
        return new("glob:" + glob, new Regex(sb.Append('$').ToString(), RegexOptions.CultureInvariant));
    }

    /// <summary>"glob:..." is a glob, anything else a regex.</summary>
    public static TargetPattern Parse(string text) => text.StartsWith("glob:", StringComparison.Ordinal) ? Glob(text[5..]) : Regex(text);

    public bool Matches(string path) => _regex.IsMatch(path);

    public override string ToString() => Text;
}

/// <summary>Per-pattern rank/alpha overrides; the last matching rule wins.</summary>
public sealed record TargetOverride(TargetPattern Pattern, int? Rank = null, double? Alpha = null);
