using System.Text;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.Tests.IO;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// Training YAML: configs written by <see cref="TrainConfigYaml.Serialize"/>, with values swapped for numbers out of
/// range, non-finite literals, containers, tags, anchors and aliases, very long strings, flow and block nesting up to
/// 100,000 levels, alias bombs and byte-level damage, through <see cref="TrainConfigYaml.Load"/> and
/// <see cref="TrainConfigYaml.Resolve"/>: each ends in a <see cref="TrainConfigException"/> naming the file, or a config.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class TrainConfigFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static readonly string[] Values =
    [
        "-1", "0", "1e400", "-1e400", "nan", ".nan", ".inf", "-.inf", "~", "null", "", "[]", "{}", "[a, [b, [c]]]", "{a: 1}", "&x 5", "*x",
        "!!binary AAAA", "!!int 99999999999999999999", "'unterminated", "\"\\u0000\"", "\"\\uD800\"", "9223372036854775808", "0x7FFFFFFF",
        "true", "yes", "- a\n- b", "|\n  block\n  text", "? complex\n: key",
    ];

    [Fact]
    public void HostileTrainingConfigsAreRefusedWithTrainConfigException()
    {
        var bases = new[]
        {
            TrainConfigYaml.Serialize(new TrainConfig
            {
                Model = "models/sd15", Images = "data/dog", Prompt = "a photo of sks dog", Out = "runs/dog",
                ValidationPrompts = new EquatableList<string>(["a sks dog on the beach", "a sks dog in snow"]), ValidateEvery = 50,
            }),
            "model: m\nimages: i\nprompt: p\nout: o\nrank: 8\nlr: 1e-4\nvalidation-prompt: [x, y]\nvalidation-seeds: [1, 2, 3]\n",
        };
        var r = FuzzSettings.Random("yaml");
        var harness = new FuzzHarness("training YAML", output);
        for (int i = 0, n = FuzzSettings.Cases(200); i < n; i++)
        {
            var (text, what) = Make(r, bases[r.Next(bases.Length)]);
            var path = _tmp.File($"case{i:D5}.yaml");
            File.WriteAllText(path, text);
            long size = new FileInfo(path).Length;
            harness.Run($"case {i}: {what} (Load)", path, size, typeof(TrainConfigException), () => TrainConfigYaml.Load(path));
            harness.Run($"case {i}: {what} (Resolve)", path, size, typeof(TrainConfigException),
                () => TrainConfigYaml.Resolve(path, [KeyValuePair.Create("steps", "3")]));
            File.Delete(path);
        }
        harness.AssertClean();
    }

    private static (string Text, string What) Make(Random r, string yaml)
    {
        var lines = yaml.Replace("\r\n", "\n").Split('\n').ToList();
        int at = r.Next(lines.Count);
        string Key(string line) => line.Contains(':') ? line[..line.IndexOf(':')] : "x";
        switch (r.Next(9))
        {
            case 0 or 1:
            {
                var v = Values[r.Next(Values.Length)];
                lines[at] = $"{Key(lines[at])}: {v}";
                return (string.Join('\n', lines), $"line {at + 1} value := {v.Replace("\n", "\\n")}");
            }
            case 2:
            {
                int depth = new[] { 17, 100, 10_000, 100_000 }[r.Next(4)];
                bool map = r.Next(2) == 0;
                var nest = map ? string.Concat(Enumerable.Repeat("{a: ", depth)) + "1" + new string('}', depth) : new string('[', depth) + new string(']', depth);
                lines[at] = $"{Key(lines[at])}: {nest}";
                return (string.Join('\n', lines), $"line {at + 1} value nested {depth} deep ({(map ? "flow mappings" : "flow sequences")})");
            }
            case 3:
            {
                int depth = new[] { 20, 200, 600 }[r.Next(3)];
                var sb = new StringBuilder("model: m\n");
                for (int d = 0; d < depth; d++) sb.Append(' ', d).Append(r.Next(2) == 0 ? "k:\n" : "- \n");
                return (sb.ToString(), $"block nesting {depth} deep");
            }
            case 4:
            {
                var sb = new StringBuilder("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
                for (int k = 1; k < 12; k++) sb.Append($"a{k}: &a{k} [*a{(k == 1 ? "" : (k - 1).ToString())}, *a{(k == 1 ? "" : (k - 1).ToString())}, *a{(k == 1 ? "" : (k - 1).ToString())}]\n");
                sb.Append("validation-prompt: *a11\n");
                return (sb.ToString() + yaml, "alias bomb");
            }
            case 5:
            {
                var v = new string('x', 1 << (10 + r.Next(11)));
                lines[at] = $"{Key(lines[at])}: {v}";
                return (string.Join('\n', lines), $"line {at + 1} value of {v.Length} characters");
            }
            case 6:
                lines.Insert(at, lines[at]);
                return (string.Join('\n', lines), $"line {at + 1} repeated");
            case 7:
                lines[at] = new string(' ', r.Next(1, 9)) + lines[at];
                return (string.Join('\n', lines), $"line {at + 1} indented");
            default:
            {
                var (bytes, what) = ByteMutator.Mutate(Encoding.UTF8.GetBytes(yaml), r);
                return (Encoding.UTF8.GetString(bytes), what);
            }
        }
    }
}
