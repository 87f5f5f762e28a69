using System.Text.Json.Nodes;
using DiffusionPeft.Core.Text;

namespace DiffusionPeft.Tests.Golden;

/// <summary>
/// A tokenizer as a golden case states it: the files of a clip_tokenizer case (its tokenizer_config.json where it
/// lists one), then the constructor kwargs the case passed (e.g. <c>{"pad_token": "!"}</c> for SD 2.x), and the text
/// cleanup it ran with ("without ftfy" is transformers' fallback).
/// </summary>
public static class GoldenTokenizerSettings
{
    /// <summary>The tokenizer of clip_tokenizer case <paramref name="tokenizerCase"/> with <paramref name="kwargs"/> applied.</summary>
    public static ClipTokenizer FromCase(string tokenizerCase, JsonNode? kwargs, ClipTextCleanup cleanup, string where)
    {
        var files = GoldenData.Case(tokenizerCase)["files"] as JsonObject;
        var config = files?.ContainsKey("tokenizer_config") == true ? GoldenData.FileOf(tokenizerCase, "tokenizer_config") : null;
        var options = ClipTokenizer.OptionsFromConfig(config) with { Cleanup = cleanup };
        options = WithKwargs(options, kwargs, where);
        return ClipTokenizer.FromFiles(GoldenData.FileOf(tokenizerCase, "vocab"), GoldenData.FileOf(tokenizerCase, "merges"), options);
    }

    /// <summary>CLIPTokenizer constructor kwargs; a kwarg this tokenizer cannot honour fails the test instead of being ignored.</summary>
    public static ClipTokenizerOptions WithKwargs(ClipTokenizerOptions options, JsonNode? kwargs, string where)
    {
        if (kwargs is null) return options;
        if (kwargs is not JsonObject o) throw new Xunit.Sdk.XunitException($"{where}: tokenizer_kwargs should be an object, got {kwargs.ToJsonString()}");
        foreach (var (key, value) in o)
        {
            options = key switch
            {
                "pad_token" => options with { PadToken = Token(value, key, where) },
                "bos_token" => options with { BosToken = Token(value, key, where) },
                "eos_token" => options with { EosToken = Token(value, key, where) },
                "unk_token" => options with { UnkToken = Token(value, key, where) },
                "model_max_length" or "max_length" => options with { MaxLength = (int)value! },
                _ => throw new Xunit.Sdk.XunitException($"{where}: tokenizer kwarg '{key}' ({value?.ToJsonString()}) is not supported by these tests"),
            };
        }
        return options;
    }

    /// <summary>
    /// The cleanup a case's "tokenizer_text_cleanup" names: "without ftfy" (transformers' BasicTokenizer fallback) or
    /// "with ftfy"; a case that names none ran without ftfy, as diffusers pipelines usually do.
    /// </summary>
    public static ClipTextCleanup Cleanup(JsonNode? description, string where)
    {
        var text = description is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        if (text is null) return ClipTextCleanup.Basic;
        if (text.Contains("without ftfy", StringComparison.OrdinalIgnoreCase)) return ClipTextCleanup.Basic;
        if (text.Contains("ftfy", StringComparison.OrdinalIgnoreCase)) return ClipTextCleanup.FtfyLike;
        throw new Xunit.Sdk.XunitException($"{where}: tokenizer_text_cleanup \"{text}\" names neither 'with ftfy' nor 'without ftfy'");
    }

    private static string Token(JsonNode? value, string key, string where) => value switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject t when t["content"] is JsonValue c && c.TryGetValue<string>(out var s) => s,
        _ => throw new Xunit.Sdk.XunitException($"{where}: tokenizer kwarg '{key}' should be a string or {{\"content\": ...}}, got {value?.ToJsonString()}"),
    };
}
