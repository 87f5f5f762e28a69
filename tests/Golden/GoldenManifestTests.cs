using DiffusionPeft.Diffusion.IO;

namespace DiffusionPeft.Tests.Golden;

[Trait("Category", "Golden")]
public sealed class GoldenManifestTests
{
    [Fact]
    public void EveryCaseFileListedInTheManifestExistsAndEverySafetensorsFileValidates()
    {
        int checkedFiles = 0;
        foreach (var (name, node) in GoldenData.Manifest["cases"]!.AsObject())
        {
            if (node!["files"] is not System.Text.Json.Nodes.JsonObject files) continue;
            foreach (var (_, rel) in files)
            {
                if (rel is not System.Text.Json.Nodes.JsonValue v || !v.TryGetValue<string>(out var r) || r.Contains(' ')) continue; // some entries describe rather than name files
                var path = Path.Combine(GoldenData.Dir, r);
                Assert.True(File.Exists(path) || Directory.Exists(path), $"{name}: {path} is missing");
                if (!path.EndsWith(".safetensors")) continue;
                using var f = SafetensorsFile.Open(path);
                Assert.NotEmpty(f.Entries);
                checkedFiles++;
            }
        }
        Assert.True(checkedFiles > 0, "the manifest lists no .safetensors file");
    }
}
