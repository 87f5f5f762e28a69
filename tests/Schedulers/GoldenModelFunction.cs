using System.Globalization;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Schedulers;

/// <summary>
/// The stand-in model of a schedulers case, read from the manifest's <c>model_function</c>, e.g.
/// "model_output = 0.9 * model_input + 0.05 * (t / 1000), where ...". Any expression that is affine in
/// <c>model_input</c> and <c>t</c> (numbers, + - * /, parentheses) is accepted; the text after the first top-level
/// comma, semicolon or "where" is commentary.
/// </summary>
public sealed record GoldenModelFunction(double InputCoefficient, double TimestepCoefficient, double Constant, string Source)
{
    public const string InputName = "model_input";
    public const string TimestepName = "t";

    /// <summary>model_output for <paramref name="modelInput"/> at timestep value <paramref name="t"/>.</summary>
    public Tensor Apply(Tensor modelInput, double t) => modelInput * InputCoefficient + (TimestepCoefficient * t + Constant);

    public override string ToString() =>
        $"{InputCoefficient.ToString("R", CultureInfo.InvariantCulture)} * {InputName} + {TimestepCoefficient.ToString("R", CultureInfo.InvariantCulture)} * {TimestepName}" +
        $" + {Constant.ToString("R", CultureInfo.InvariantCulture)}";

    public static GoldenModelFunction Parse(string text, string where)
    {
        ArgumentNullException.ThrowIfNull(text);
        try
        {
            var expression = ExpressionPart(text);
            var parser = new Parser(Tokenize(expression));
            var value = parser.ParseExpression();
            parser.ExpectEnd();
            if (value.Input == 0) throw new FormatException($"it does not depend on {InputName}");
            return new GoldenModelFunction(value.Input, value.T, value.Const, text);
        }
        catch (FormatException ex)
        {
            throw new FormatException(
                $"{where}: cannot read the model function \"{text}\": {ex.Message}. Expected an expression affine in {InputName} and {TimestepName}, " +
                $"such as \"model_output = a * {InputName} + b * ({TimestepName} / c)\".", ex);
        }
    }

    /// <summary>The right-hand side of "model_output = ...", up to the first top-level ',', ';' or "where".</summary>
    private static string ExpressionPart(string text)
    {
        var s = text.Trim();
        int eq = s.IndexOf('=');
        if (eq >= 0)
        {
            var lhs = s[..eq].Trim();
            if (lhs != "model_output") throw new FormatException($"the left-hand side is \"{lhs}\", not model_output");
            s = s[(eq + 1)..];
        }
        int depth = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == '(') depth++;
            else if (c == ')') depth--;
            else if (depth == 0 && (c is ',' or ';' or '\n' || IsWordAt(s, i, "where"))) return s[..i].Trim();
        }
        return s.Trim();
    }

    private static bool IsWordAt(string s, int i, string word) =>
        string.CompareOrdinal(s, i, word, 0, word.Length) == 0
        && (i == 0 || !char.IsLetterOrDigit(s[i - 1]) && s[i - 1] != '_')
        && (i + word.Length == s.Length || !char.IsLetterOrDigit(s[i + word.Length]) && s[i + word.Length] != '_');

    private static List<string> Tokenize(string s)
    {
        var tokens = new List<string>();
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (c is '+' or '-' or '*' or '/' or '(' or ')') { tokens.Add(c.ToString()); i++; continue; }
            int start = i;
            if (char.IsDigit(c) || c == '.')
            {
                while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '.')) i++;
                if (i < s.Length && s[i] is 'e' or 'E')
                {
                    i++;
                    if (i < s.Length && s[i] is '+' or '-') i++;
                    while (i < s.Length && char.IsDigit(s[i])) i++;
                }
            }
            else if (char.IsLetter(c) || c == '_')
                while (i < s.Length && (char.IsLetterOrDigit(s[i]) || s[i] == '_')) i++;
            else throw new FormatException($"unexpected character '{c}'");
            tokens.Add(s[start..i]);
        }
        if (tokens.Count == 0) throw new FormatException("the expression is empty");
        return tokens;
    }

    /// <summary>A value Input·model_input + T·t + Const.</summary>
    private readonly record struct Affine(double Input, double T, double Const)
    {
        public bool IsConstant => Input == 0 && T == 0;
        public static Affine operator +(Affine a, Affine b) => new(a.Input + b.Input, a.T + b.T, a.Const + b.Const);
        public static Affine operator -(Affine a) => new(-a.Input, -a.T, -a.Const);
        public Affine Times(double k) => new(Input * k, T * k, Const * k);
    }

    private sealed class Parser(List<string> tokens)
    {
        private int _pos;

        private string? Peek => _pos < tokens.Count ? tokens[_pos] : null;

        public void ExpectEnd()
        {
            if (Peek is { } t) throw new FormatException($"unexpected \"{t}\" after the expression");
        }

        public Affine ParseExpression()
        {
            var value = ParseTerm();
            while (Peek is "+" or "-")
            {
                bool minus = tokens[_pos++] == "-";
                var rhs = ParseTerm();
                value += minus ? -rhs : rhs;
            }
            return value;
        }

        private Affine ParseTerm()
        {
            var value = ParseUnary();
            while (Peek is "*" or "/")
            {
                bool divide = tokens[_pos++] == "/";
                var rhs = ParseUnary();
                if (divide)
                {
                    if (!rhs.IsConstant) throw new FormatException("it divides by a term that is not a constant");
                    if (rhs.Const == 0) throw new FormatException("it divides by zero");
                    value = value.Times(1 / rhs.Const);
                }
                else if (value.IsConstant) value = rhs.Times(value.Const);
                else if (rhs.IsConstant) value = value.Times(rhs.Const);
                else throw new FormatException("it multiplies two terms that depend on the inputs (not affine)");
            }
            return value;
        }

        private Affine ParseUnary()
        {
            if (Peek == "-") { _pos++; return -ParseUnary(); }
            if (Peek == "+") { _pos++; return ParseUnary(); }
            return ParsePrimary();
        }

        private Affine ParsePrimary()
        {
            var token = Peek ?? throw new FormatException("the expression ends early");
            _pos++;
            if (token == "(")
            {
                var inner = ParseExpression();
                if (Peek != ")") throw new FormatException("a parenthesis is not closed");
                _pos++;
                return inner;
            }
            if (token == InputName) return new Affine(1, 0, 0);
            if (token == TimestepName) return new Affine(0, 1, 0);
            if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out double number)) return new Affine(0, 0, number);
            throw new FormatException($"unknown name or token \"{token}\" (known: {InputName}, {TimestepName})");
        }
    }
}
