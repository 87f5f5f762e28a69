using System.Text;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Tests.IO;
using Xunit.Abstractions;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// Prompt files (plain text and JSON Lines): JSON values of the wrong type, nulls in the adapter list, huge n, negative
/// and non-finite numbers, repeated keys, deep nesting, megabyte prompts and byte damage, through
/// <see cref="PromptFile.Read"/> and the <see cref="GenerationPlan"/> built from what it accepts.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class PromptFileFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static readonly string[] JsonLines =
    [
        """{"prompt": "a red cube", "negative": "blurry", "n": 4, "seed": 7, "steps": 20, "sampler": "euler_a", "cfg": 6, "width": 512, "height": 768, "clip_skip": 1, "adapter": ["style.safetensors:0.7"]}""",
        """{"prompt": "a sks dog on the beach", "n": 2, "batch": 2, "eta": 0.5, "adapters": "dog.safetensors"}""",
        """{"prompt": "a lighthouse at dawn", "guidance_scale": 7.5, "negative_prompt": "low quality"}""",
    ];

    [Fact]
    public void HostilePromptFilesAreRefusedWithInvalidDataException()
    {
        var r = FuzzSettings.Random("prompts");
        var harness = new FuzzHarness("prompt files", output);
        var defaults = new GenerationOptions { Count = 1, Steps = 20 };
        for (int i = 0, n = FuzzSettings.Cases(200); i < n; i++)
        {
            var lines = new List<string> { "# prompts", "a photo of a cat", "" };
            lines.AddRange(JsonLines.OrderBy(_ => r.Next()).Take(1 + r.Next(3)));
            string what;
            int at = r.Next(lines.Count);
            switch (r.Next(6))
            {
                case 0 or 1 or 2:
                    at = lines.FindIndex(l => l.StartsWith('{'));
                    (lines[at], what) = JsonMutator.Mutate(lines[at], r);
                    break;
                case 3:
                {
                    int len = 1 << (12 + r.Next(10));
                    lines[at] = r.Next(2) == 0 ? new string('a', len) : $$"""{"prompt": "{{string.Join(' ', Enumerable.Repeat("word", len / 5))}}"}""";
                    what = $"a prompt of about {len:N0} characters";
                    break;
                }
                case 4:
                {
                    var entry = new[] { "null", "1", "[]", "{}", "\"\"", "\"x:nan\"", "\"x:1e400\"", "\"x:-inf\"" }[r.Next(8)];
                    lines.Add($$"""{"prompt": "p", "adapter": ["a.safetensors", {{entry}}]}""");
                    what = $"adapter list with {entry}";
                    break;
                }
                default:
                {
                    var text = string.Join('\n', lines);
                    var (bytes, w) = ByteMutator.Mutate(Encoding.UTF8.GetBytes(text), r);
                    lines = [Encoding.UTF8.GetString(bytes)];
                    what = w;
                    break;
                }
            }
            var path = _tmp.File($"case{i:D5}.{(r.Next(2) == 0 ? "txt" : "jsonl")}");
            File.WriteAllText(path, string.Join('\n', lines));
            harness.Run($"case {i}: {what}", path, new FileInfo(path).Length, typeof(InvalidDataException), () =>
            {
                var prompts = PromptFile.Read(path, defaults);
                _ = new GenerationPlan(prompts, _tmp.File("out")).AllBatches.Count;
            });
            File.Delete(path);
        }
        harness.AssertClean();
    }
}
