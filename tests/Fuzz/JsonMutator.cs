using System.Text.Json;
using System.Text.Json.Nodes;

namespace DiffusionPeft.Tests.Fuzz;

/// <summary>
/// Structure-aware mutations of a JSON document: one value is replaced by another type, a negative, huge, fractional or
/// non-finite number, null, an empty or deeply nested container or a very long string; a key is removed or repeated; a
/// list loses, repeats or gains a null entry.
/// </summary>
public static class JsonMutator
{
    private const string Marker = "\u0001fuzz\u0001";

    public static (string Json, string What) Mutate(string json, Random r)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException) { return (json, "unparsable base left as is"); }
        if (root is null) return (json, "null base left as is");
        var slots = new List<(JsonNode Parent, string? Key, int Index, string Path)>();
        Collect(root, "$", slots);
        if (slots.Count == 0) return (Wrap(root.ToJsonString(), r, out var w), w);

        var (parent, key, index, path) = slots[r.Next(slots.Count)];
        JsonNode? current = key is not null ? parent[key] : parent[index];
        string what;
        string? literal = null;
        JsonNode? replacement;
        switch (r.Next(16))
        {
            case 0: replacement = null; what = "null"; break;
            case 1: replacement = "text"; what = "a string"; break;
            case 2: replacement = r.Next(2) == 0; what = "a bool"; break;
            case 3: replacement = -1 - r.Next(1000); what = "a negative number"; break;
            case 4: replacement = 0; what = "zero"; break;
            case 5:
                replacement = new[] { 2147483648.0, 4294967296.0, 1e12, 1e18, 1e30, 1e300, 65536.0 * 65536 * 8 }[r.Next(7)];
                what = $"a huge number ({replacement})"; break;
            case 6: replacement = 0.5 + r.Next(4); what = "a fraction"; break;
            case 7:
                literal = new[] { "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-0" }[r.Next(6)];
                replacement = Marker; what = $"the literal {literal}"; break;
            case 8: replacement = new JsonArray(); what = "an empty list"; break;
            case 9: replacement = new JsonObject(); what = "an empty object"; break;
            case 10: replacement = new JsonArray((JsonNode?)null); what = "[null]"; break;
            case 11: replacement = new string('x', 1 << (10 + r.Next(11))); what = "a long string"; break;
            case 12:
                int depth = new[] { 20, 70, 1000, 100_000 }[r.Next(4)];
                literal = new string('[', depth) + new string(']', depth);
                replacement = Marker; what = $"nesting {depth} deep"; break;
            case 13 when current is JsonValue v && v.TryGetValue<double>(out var d):
                replacement = -d * (1 + r.Next(1000)); what = "the number negated and scaled"; break;
            case 14 when key is not null && parent is JsonObject o:
                o.Remove(key);
                return (root.ToJsonString(), $"{path} removed");
            case 15 when key is not null && parent is JsonObject:
            {
                // A repeated key: JSON text allows it, most readers keep the last one silently.
                var text = root.ToJsonString();
                var dup = JsonSerializer.Serialize(key) + ":" + (current?.ToJsonString() ?? "null") + ",";
                int brace = text.IndexOf('{', StringComparison.Ordinal);
                return (text.Insert(brace + 1, dup), $"{path} repeated at the top level");
            }
            default:
                if (current is JsonArray list && list.Count > 0)
                {
                    if (r.Next(2) == 0) { list.RemoveAt(r.Next(list.Count)); return (root.ToJsonString(), $"{path}: an entry removed"); }
                    list.Add(null); return (root.ToJsonString(), $"{path}: null appended");
                }
                replacement = new JsonArray(current?.DeepClone()); what = "wrapped in a list"; break;
        }
        if (key is not null) parent[key] = replacement; else parent[index] = replacement;
        var result = root.ToJsonString();
        if (literal is not null) result = result.Replace(JsonSerializer.Serialize(Marker), literal, StringComparison.Ordinal);
        return (result, $"{path} := {what}");
    }

    private static string Wrap(string json, Random r, out string what)
    {
        int depth = 1 + r.Next(100_000);
        what = $"wrapped {depth} deep";
        return new string('[', depth) + json + new string(']', depth);
    }

    private static void Collect(JsonNode node, string path, List<(JsonNode, string?, int, string)> slots)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o.ToList())
                {
                    slots.Add((o, k, -1, $"{path}.{k}"));
                    if (v is not null) Collect(v, $"{path}.{k}", slots);
                }
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++)
                {
                    slots.Add((a, null, i, $"{path}[{i}]"));
                    if (a[i] is { } v) Collect(v, $"{path}[{i}]", slots);
                }
                break;
        }
    }
}
