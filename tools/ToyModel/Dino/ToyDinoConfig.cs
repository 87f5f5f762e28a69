using System.Text.Json;
using System.Text.Json.Nodes;

namespace DiffusionPeft.ToyModel.Dino;

/// <summary>The toy DINO's shapes (its config.json).</summary>
public sealed record ToyDinoConfig
{
    public int Width { get; init; } = 24;
    public int EmbedDim { get; init; } = 128;
    public int ProjectionDim { get; init; } = 64;

    public JsonObject ToJson() => new()
    {
        ["model_type"] = "toy_dino", ["width"] = Width, ["embed_dim"] = EmbedDim, ["projection_dim"] = ProjectionDim, ["image_size"] = ToyDinoEncoder.InputSize,
    };

    public static ToyDinoConfig Load(string path)
    {
        var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        if ((string?)o["model_type"] != "toy_dino") throw new InvalidDataException($"{path}: model_type is not toy_dino");
        int Int(string key) => o[key]?.GetValue<int>() ?? throw new InvalidDataException($"{path}: '{key}' is missing");
        return new ToyDinoConfig { Width = Int("width"), EmbedDim = Int("embed_dim"), ProjectionDim = Int("projection_dim") };
    }

    public string ToJsonString() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
